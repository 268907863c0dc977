"""Conditional VAE (Sohn et al. 2015) on dynamically binarised MNIST: q(z|x, y), p(x|z, y).

The one-hot class is appended to the encoder's input and to z; samples of a requested class
come from decoding z ~ N(0, I) with that class, and the sample grids hold one row per class.
By default a 784-500-4 ReLU MLP trained with Adam(2e-3) for 2,000 steps of 100 (a few minutes
on a 2-core CPU); the small z leaves the class to the label and keeps the style. `:paper` is
a paper-scale run: two hidden layers of 1,000 ReLU units, 20-d z, Adam(1e-3), 100 epochs.
"""

from configs import default


def get_config(arg: str | None = None):
    default.check_variant(arg, ('paper',))
    config = default.base('vae')
    config.model.conditional = True
    config.model.net = 'mlp'
    config.model.hidden = (500,)
    config.model.activation = 'relu'
    config.model.latent_dim = 4
    config.model.likelihood = 'bernoulli'
    config.dataset.name = 'mnist'
    config.dataset.binarize = True
    config.lr = 2e-3
    config.train.batch_size = 100
    config.train.num_steps = 2000
    config.train.num_samples = 100  # a 10 x 10 grid: one row per digit
    config.train.eval_every = 1000
    config.train.checkpoint_every = 1000
    config.train.sample_every = 1000
    if arg == 'paper':
        config.model.hidden = (1000, 1000)
        config.model.latent_dim = 20
        config.lr = 1e-3
        config.train.num_steps = 60000
        config.train.eval_every = 6000
        config.train.checkpoint_every = 6000
        config.train.sample_every = 6000
    return config
