"""The hybrid (VAE + image-to-image generator) on MNIST, paired: bigger nets, 5 epochs.

Variants as in `hybrid_shapes.py`: ':rotate90' (default), ':flip', ':inpaint' (top-left
quadrant blacked out), ':denoise' (Gaussian noise of std 0.3), ':scale' (1.5x zoom). Outputs
are scored by PSNR and SSIM against the exact transformed test images.
"""

from configs import default, hybrid_shapes

VARIANTS = ('rotate90', 'flip', 'inpaint', 'denoise', 'scale')


def get_config(arg: str | None = None):
    default.check_variant(arg, VARIANTS)
    config = hybrid_shapes.get_config(arg)
    config.model.latent_dim = 32
    config.model.width = 32
    config.model.code_dim = 256
    config.dataset.name = 'mnist'
    config.train.batch_size = 64
    config.train.num_steps = 4690  # five epochs of 60k images at batch 64
    config.train.eval_every = 938
    config.train.checkpoint_every = 938
    config.train.sample_every = 938
    config.train.eval_examples = 0
    return config
