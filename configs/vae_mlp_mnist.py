"""Kingma & Welling 2013: 784-500-20 tanh MLP VAE on MNIST, Bernoulli decoder.

The paper trains with Adagrad (lr 0.01..0.1) and batch 100; this config keeps those and
binarises dynamically. `:adam` swaps in Adam(1e-3). `get_sweep` (`--mode sweep`): four
learning rates x two seeds.
"""

from configs import default
from gen_models import sweep_algebra as hyper


def get_config(arg: str | None = None):
    default.check_variant(arg, ('adam',))
    config = default.base('vae')
    config.model.net = 'mlp'
    config.model.hidden = (500,)
    config.model.activation = 'tanh'
    config.model.latent_dim = 20
    config.model.likelihood = 'bernoulli'
    config.dataset.name = 'mnist'
    config.dataset.binarize = True
    if arg == 'adam':
        config.lr = 1e-3
    else:
        config.lr = 0.02
        config.optim.name = 'adagrad'
    config.train.batch_size = 100
    config.train.num_steps = 6000  # ten epochs of 60k images at batch 100
    config.train.eval_every = 1200
    config.train.checkpoint_every = 1200
    config.train.sample_every = 1200
    return config


def get_sweep(arg: str | None = None) -> hyper.Sweep:
    """Learning rate x seed over the paper's Adagrad range (or around Adam's 1e-3)."""
    default.check_variant(arg, ('adam',))
    rates = [3e-4, 1e-3, 3e-3, 1e-2] if arg == 'adam' else [0.01, 0.02, 0.05, 0.1]
    return hyper.product(hyper.sweep('lr', rates), hyper.seeds(2))
