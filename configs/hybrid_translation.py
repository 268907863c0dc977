"""The hybrid on the image-translation tasks of pix2pix and CycleGAN, on the same data and
budget, for the comparison table of `python -m reproductions.translation`.

  python launch.py --config configs/hybrid_translation.py:rotate45_input --workdir runs/h/r45

Variant '<task>[_input|_both]': the task, dataset, batch and steps of the pix2pix config
of that task (MNIST 32 px: 'rotate45', 'zoom'; CIFAR-10: 'inpaint', 'denoise01',
'denoise02'; Olivetti faces 64 px: 'olivetti', lower-half completion), with G fed the decoded
image (the design as written), the input image ('_input') or both as channels ('_both'),
`model.generator_input`. 'unpaired_rotate45': the data and budget of
`configs/cyclegan_mnist.py` (MNIST <-> other digits rotated 45 degrees, no pairs), trained
as UNIT with a discriminator per domain. The nets are `configs/hybrid_mnist.py`'s (latent 32,
width 32, code 256) at its own optimiser; results are scored by eval/psnr and eval/ssim
against the exact targets like the other methods.
"""

from configs import cyclegan_mnist, default, pix2pix_cifar10, pix2pix_mnist, pix2pix_olivetti

TASKS = {
    'rotate45': lambda: pix2pix_mnist.get_config('rotate45'),
    'zoom': lambda: pix2pix_mnist.get_config('zoom'),
    'inpaint': lambda: pix2pix_cifar10.get_config('inpaint'),
    'denoise01': lambda: pix2pix_cifar10.get_config('denoise01'),
    'denoise02': lambda: pix2pix_cifar10.get_config('denoise02'),
    'olivetti': pix2pix_olivetti.get_config,
}
INPUTS = {'': 'decoded', '_input': 'input', '_both': 'both'}
VARIANTS = (*(f'{t}{s}' for t in TASKS for s in INPUTS), 'unpaired_rotate45')


def get_config(arg: str | None = None):
    default.check_variant(arg, VARIANTS)
    arg = arg or 'rotate45'
    config = default.base('hybrid')
    config.model.update(latent_dim=32, width=32, code_dim=256)
    if arg == 'unpaired_rotate45':
        source = cyclegan_mnist.get_config()
        config.model.adversarial_weight = 30.0
    else:
        task = next(t for t in sorted(TASKS, key=len, reverse=True) if arg.startswith(t))
        source = TASKS[task]()
        config.model.generator_input = INPUTS[arg[len(task) :]]
    for section in ('dataset', 'transform', 'train'):
        config[section] = source[section]
    config.sweep.metric = 'eval/psnr'
    return config
