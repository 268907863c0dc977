"""pix2pix and the U-Net L1 baseline on CIFAR-10 (32 px, RGB), exact targets.

  python launch.py --config configs/pix2pix_cifar10.py:inpaint --workdir runs/pix2pix/inpaint

Tasks: ':inpaint' (default) the centred half-size box blacked out, x' the whole image (also
scored with the known pixels pasted back: eval/completed_psnr); ':denoise01' and
':denoise02' Gaussian noise of std 0.1 / 0.2 on [0, 1] pixels, x' the clean image.
'<task>_unet' is the U-Net L1 baseline, '<task>_paper' pix2pix's size, as in
`configs/pix2pix_mnist.py`, whose CPU size (width 16, batch 32, 2,000 steps) is the default.
"""

from configs import default
from configs.pix2pix_mnist import pix2pix_config

TASKS = {
    'inpaint': {'transform.name': 'mask', 'transform.mask': 'centre'},
    'denoise01': {'transform.name': 'noise', 'transform.noise_std': 0.1},
    'denoise02': {'transform.name': 'noise', 'transform.noise_std': 0.2},
}
VARIANTS = (*TASKS, *(f'{t}_unet' for t in TASKS), *(f'{t}_paper' for t in TASKS))


def get_config(arg: str | None = None):
    default.check_variant(arg, VARIANTS)
    task, _, variant = (arg or 'inpaint').partition('_')
    return pix2pix_config('cifar10', TASKS[task], variant)
