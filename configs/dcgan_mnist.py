"""DCGAN on MNIST (Radford et al. 2016 nets; Goodfellow et al. 2014 objective).

G: dense -> conv-transpose stack with batch norm and ReLU -> tanh; D: conv +
LeakyReLU(0.2) + dropout -> logit. Adam(2e-4, b1=0.5). Variants:
`:minimax` the literal min-max generator loss instead of the non-saturating one;
`:hinge` the hinge loss with a spectrally normalised D without dropout (SNGAN's recipe on
DCGAN nets); `:wgan_gp` a Wasserstein critic with gradient penalty 10, 5 critic updates per
G update and Adam(1e-4, b1=0, b2=0.9) (Gulrajani et al. 2017): each step reads 5 x 64
images, so it runs 600 steps (about 2 epochs of critic data).
"""

from configs import default


def get_config(arg: str | None = None):
    default.check_variant(arg, ('minimax', 'hinge', 'wgan_gp'))
    config = default.base('gan')
    config.lr = 2e-4
    config.model.net = 'conv'
    config.model.latent_dim = 100
    config.model.width = 64
    config.model.gan_loss = 'minimax' if arg == 'minimax' else 'non_saturating'
    config.dataset.name = 'mnist'
    config.optim.b1 = 0.5
    config.train.num_steps = 1876  # two epochs of 60k images at batch 64
    config.train.eval_every = 938
    config.train.checkpoint_every = 469
    config.train.sample_every = 469
    if arg == 'hinge':
        config.model.gan_loss = 'hinge'
        config.model.spectral_norm = True
        config.model.d_dropout = 0.0
    if arg == 'wgan_gp':
        config.lr = 1e-4
        config.model.gan_loss = 'wasserstein'
        config.model.gradient_penalty = 10.0
        config.model.n_critic = 5
        config.model.d_dropout = 0.0
        config.optim.b1, config.optim.b2 = 0.0, 0.9
        config.train.batch_size = 5 * 64  # one 64-image batch per critic update
        config.train.num_steps = 600
        config.train.eval_every = 300
        config.train.checkpoint_every = 150
        config.train.sample_every = 150
    return config
