"""CycleGAN on unpaired MNIST <-> MNIST rotated by 45 degrees, at 32 px.

  python launch.py --config configs/cyclegan_mnist.py --workdir runs/cyclegan/rotate45

Domain A holds digits, domain B other digits rotated 45 degrees counter-clockwise (bilinear):
no pair is given, yet each translation G(x) has an exact target, so eval/psnr, eval/ssim
score CycleGAN as they score pix2pix (`configs/pix2pix_mnist.py`) and the hybrid.
':paper' uses CycleGAN's size: width 64, 9 residual blocks, batch 1, Adam(2e-4, b1 0.5),
200 epochs of its 1,000-image sets (200,000 steps), the rate held for the first half and
decaying linearly to 0 over the second (`optim.decay_start`), as CycleGAN's. The default is a CPU size: width 16, 6 blocks,
16 images per domain, 1,000 steps.
"""

from configs import default


def get_config(arg: str | None = None):
    default.check_variant(arg, ('paper',))
    paper = arg == 'paper'
    config = default.base('cyclegan')
    config.dataset.name = 'mnist'
    config.dataset.image_size = 32
    config.transform.update(name='rotate', angle=45.0, pairing='unpaired')
    config.lr = 2e-4
    config.model.width = 64 if paper else 16
    config.model.blocks = 9 if paper else 6
    num_steps = 200_000 if paper else 1_000
    config.train.update(
        batch_size=2 if paper else 32,
        num_steps=num_steps,
        log_every=max(num_steps // 100, 10),
        eval_every=num_steps // 4,
        checkpoint_every=num_steps // 4,
        sample_every=num_steps // 4,
        eval_examples=1000,
        eval_batch_size=100,
        num_samples=36,
    )
    config.optim.update(b1=0.5, b2=0.999, schedule='linear', decay_start=0.5)
    config.sweep.metric = 'eval/psnr'
    return config
