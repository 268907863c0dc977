"""pix2pix and the U-Net L1 baseline on MNIST resized to 32 px, exact targets.

  python launch.py --config configs/pix2pix_mnist.py:rotate45 --workdir runs/pix2pix/rotate45

Tasks (`config.transform`): ':rotate45' (default) x' = x rotated 45 degrees counter-clockwise
(bilinear); ':zoom' x' = x zoomed 1.5x about the centre (bilinear). '<task>_unet' trains the
U-Net alone on L1 (no PatchGAN): the floor a learned method must beat on PSNR.
'<task>_paper' uses pix2pix's size: nets of width 64, batch 1, Adam(2e-4, b1 0.5), 80,000
steps (its facades schedule: 200 epochs of 400 images), the rate held for the first half
and decaying linearly to 0 over the second, as pix2pix's.

The default is a CPU size: width 16, batch 32, 2,000 steps (the U-Net's cost grows with the
square of its width: 111 ms a step here at width 16, 416 ms at 32). ':rotate45' takes about
5 minutes on 2 cores and ends at eval/psnr 21.6 dB, eval/ssim 0.86 against the exact
targets (doing nothing, eval/identity_psnr: 10.5 dB).
"""

from configs import default

TASKS = {
    'rotate45': {'transform.name': 'rotate', 'transform.angle': 45.0},
    'zoom': {'transform.name': 'scale', 'transform.scale': 1.5},
}
VARIANTS = (*TASKS, *(f'{t}_unet' for t in TASKS), *(f'{t}_paper' for t in TASKS))


def pix2pix_config(dataset: str, task: dict, variant: str):
    """pix2pix on `dataset` for the `task` overrides; variant '' | 'unet' | 'paper'."""
    config = default.base('pix2pix')
    config.dataset.name = dataset
    config.update_from_flattened_dict(task)
    config.lr = 2e-4
    config.optim.update(b1=0.5, b2=0.999)
    paper = variant == 'paper'
    config.model.width = 64 if paper else 16
    if variant == 'unet':
        config.model.update(use_adversarial=False, adversarial_weight=0.0)
    num_steps = 80_000 if paper else 2_000
    if paper:
        config.optim.update(schedule='linear', decay_start=0.5)
    config.train.update(
        batch_size=1 if paper else 32,
        num_steps=num_steps,
        log_every=max(num_steps // 100, 10),
        eval_every=num_steps // 4,
        checkpoint_every=num_steps // 4,
        sample_every=num_steps // 4,
        eval_examples=1000,
        eval_batch_size=100,
        num_samples=36,
    )
    config.sweep.metric = 'eval/psnr'
    return config


def get_config(arg: str | None = None):
    default.check_variant(arg, VARIANTS)
    task, _, variant = (arg or 'rotate45').partition('_')
    config = pix2pix_config('mnist', TASKS[task], variant)
    config.dataset.image_size = 32  # the U-Net halves 32 px down to 1 x 1
    return config
