"""pix2pix and the U-Net L1 baseline completing the lower half of Olivetti faces (64 px).

  python launch.py --config configs/pix2pix_olivetti.py --workdir runs/pix2pix/olivetti

The classic face-completion task (scikit-learn's Olivetti example): the input is a face with
its bottom 32 rows blacked out, the target the whole face; eval/completed_psnr scores the
output with the known upper half pasted back. Train on the 300 faces of subjects 0-29, score
on the 100 of subjects 30-39, whom the model never saw. ':unet' is the U-Net alone on L1,
':paper' pix2pix's size (width 64, batch 1, 80,000 steps, the rate decaying linearly over the
second half), as in `configs/pix2pix_mnist.py`.

The default is a CPU size: width 16, batch 16, 1,000 steps (a 64 px U-Net step costs about
four 32 px ones).
"""

from configs import default
from configs.pix2pix_mnist import pix2pix_config

TASK = {'transform.name': 'mask', 'transform.mask': 'lower_half'}
VARIANTS = ('unet', 'paper')


def get_config(arg: str | None = None):
    default.check_variant(arg, VARIANTS)
    config = pix2pix_config('olivetti_faces', TASK, arg or '')
    config.train.eval_examples = 100  # the whole test split
    config.train.eval_batch_size = 50
    if arg != 'paper':
        num_steps = 1_000
        config.train.update(
            batch_size=16,
            num_steps=num_steps,
            log_every=num_steps // 100,
            eval_every=num_steps // 4,
            checkpoint_every=num_steps // 4,
            sample_every=num_steps // 4,
        )
    return config
