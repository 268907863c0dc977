"""Class-conditional DCGAN on MNIST: a projection discriminator (Miyato & Koyama 2018) and a
generator with class-conditional batch norm; sample grids have one row per digit.

Default (a few CPU minutes): DCGAN nets of width 32 and z of 64, the non-saturating loss with
D dropout 0.3, Adam(2e-4, b1=0.5), 2,500 steps of batch 64 (2.7 epochs). `:paper`: the
projection-discriminator recipe at DCGAN size: width 64, z of 100, hinge loss, spectral
norm in D (no dropout), Adam(2e-4, b1=0, b2=0.9), 10 epochs.
"""

from configs import default


def get_config(arg: str | None = None):
    default.check_variant(arg, ('paper',))
    config = default.base('gan')
    config.lr = 2e-4
    config.model.net = 'conv'
    config.model.conditional = True
    config.model.latent_dim = 64
    config.model.width = 32
    config.model.gan_loss = 'non_saturating'
    config.dataset.name = 'mnist'
    config.optim.b1 = 0.5
    config.train.num_steps = 2500
    config.train.eval_every = 1250
    config.train.checkpoint_every = 500
    config.train.sample_every = 500
    config.train.num_samples = 100  # 10 per class
    if arg == 'paper':
        config.model.latent_dim = 100
        config.model.width = 64
        config.model.gan_loss = 'hinge'
        config.model.spectral_norm = True
        config.model.d_dropout = 0.0
        config.optim.b1, config.optim.b2 = 0.0, 0.9
        config.train.num_steps = 9375  # 10 epochs at batch 64
        config.train.eval_every = 1875
        config.train.checkpoint_every = 1875
        config.train.sample_every = 1875
    return config
