"""Conv VAE on dynamically binarised MNIST with a Bernoulli likelihood."""

from configs import default


def get_config(arg: str | None = None):
    default.check_variant(arg, ())
    config = default.base('vae')
    config.lr = 1e-3
    config.model.net = 'conv'
    config.model.latent_dim = 32
    config.model.width = 32
    config.model.likelihood = 'bernoulli'
    config.dataset.name = 'mnist'
    config.dataset.binarize = True
    config.train.num_steps = 9380  # ten epochs of 60k images at batch 64
    config.train.eval_every = 938
    config.train.checkpoint_every = 938
    config.train.sample_every = 938
    return config
