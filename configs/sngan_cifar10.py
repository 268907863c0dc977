"""SNGAN on CIFAR-10 (Miyato et al. 2018): ResNet G and D (`model.net='resnet'`), hinge
loss, spectral norm in every D layer, 5 D updates per G update on their own 64-image
batches, Adam(2e-4, b1=0, b2=0.9).

`:paper` is the paper's CIFAR-10 ResNet (G 256 channels, D 128, z of 128; 4.3M and 1.1M
parameters) for 50k G updates with the learning rate decayed linearly to 0 (Mimicry's and the
projection-discriminator code's protocol; the paper reports unconditional FID 21.7 and IS
8.22 with its own 10k/50k-sample protocol). The default is the same recipe at width 8
(G 32 channels, D 16) and 32 images per D update for 300 steps, minutes on a CPU.
"""

from configs import default


def get_config(arg: str | None = None):
    default.check_variant(arg, ('paper',))
    config = default.base('gan')
    config.lr = 2e-4
    config.model.net = 'resnet'
    config.model.gan_loss = 'hinge'
    config.model.spectral_norm = True
    config.model.n_critic = 5
    config.model.d_dropout = 0.0
    config.model.latent_dim = 128
    config.model.width = 8
    config.dataset.name = 'cifar10'
    config.optim.b1, config.optim.b2 = 0.0, 0.9
    config.train.batch_size = 5 * 32  # 32 images per D update
    config.train.num_steps = 300
    config.train.eval_every = 300
    config.train.checkpoint_every = 100
    config.train.sample_every = 100
    if arg == 'paper':
        config.model.width = 64
        config.optim.schedule = 'linear'
        config.train.batch_size = 5 * 64
        config.train.num_steps = 50_000
        config.train.eval_every = 5000
        config.train.checkpoint_every = 5000
        config.train.sample_every = 5000
    return config
