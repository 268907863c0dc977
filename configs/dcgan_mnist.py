"""DCGAN on MNIST (Radford et al. 2016 nets; Goodfellow et al. 2014 objective).

G: dense -> conv-transpose stack with batch norm and ReLU -> tanh; D: conv +
LeakyReLU(0.2) + dropout -> logit. Adam(2e-4, b1=0.5). `:minimax` uses the literal
min-max generator loss instead of the non-saturating one.
"""

from configs import default


def get_config(arg: str | None = None):
    default.check_variant(arg, ('minimax',))
    config = default.get_config()
    config.lr = 2e-4
    config.model.name = 'gan'
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
    return config
