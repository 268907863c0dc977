"""The hybrid (VAE + image-to-image generator) on the embedded shapes, 32 px: a few CPU minutes.

Every variant knows its exact target image, so outputs are scored by PSNR and SSIM against
the ground truth (eval/psnr, eval/ssim; eval/identity_* for doing nothing):
- ':rotate90' (default): x' = x rotated 90 degrees counter-clockwise.
- ':flip': x' = x mirrored left-right.
- ':inpaint': the input has its top-left quadrant blacked out; x' is the whole image.
- ':denoise': the input carries Gaussian noise of std 0.3; x' is the clean image.
- ':scale': x' = x zoomed 1.5x about the centre.
- ':unpaired': shapes <-> rotated shapes of other examples, no pairs given (UNIT-like, with a
  discriminator per domain).
"""

from configs import default

VARIANTS = {
    'rotate90': {'transform.name': 'rotate', 'transform.angle': 90.0},
    'flip': {'transform.name': 'flip', 'transform.flip_axis': 'horizontal'},
    'inpaint': {'transform.name': 'mask', 'transform.mask': 'quarter'},
    'denoise': {'transform.name': 'noise', 'transform.noise_std': 0.3},
    'scale': {'transform.name': 'scale', 'transform.scale': 1.5},
    'unpaired': {
        'transform.name': 'rotate',
        'transform.angle': 90.0,
        'transform.pairing': 'unpaired',
        'model.adversarial_weight': 30.0,
    },
}


def get_config(arg: str | None = None):
    default.check_variant(arg, tuple(VARIANTS))
    config = default.base('hybrid')
    config.model.latent_dim = 32
    config.model.width = 16
    config.model.code_dim = 128
    config.model.likelihood = 'bernoulli'
    config.dataset.name = 'shapes'
    config.dataset.shapes_resolution = 32
    config.update_from_flattened_dict(VARIANTS[arg or 'rotate90'])
    config.train.num_steps = 3000
    config.train.batch_size = 32
    config.train.eval_every = 1000
    config.train.checkpoint_every = 1000
    config.train.sample_every = 1000
    config.train.eval_examples = 1000
    config.train.num_samples = 48
    config.sweep.metric = 'eval/psnr'
    return config
