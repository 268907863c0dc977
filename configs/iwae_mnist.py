"""Importance-weighted autoencoder (Burda et al. 2015) on dynamically binarised MNIST.

Their one-stochastic-layer net: 784-200-200-50 tanh MLPs, Adam(1e-3, eps 1e-4), trained on
the k-sample bound, k = 5 by default (`:k1` is the VAE with the same net, `:k50` the paper's
largest k). Eval reports the ELBO and the k-sample bound ('iwae_k'); the tighter
5000-sample bound is `--config.eval.metrics="('iwae',)"`. By default 3,000 steps of 100
(a few minutes on a 2-core CPU); the paper's 3,280 passes with its decaying learning rate are
`configs/burda_iwae.py`.
"""

from configs import default

VARIANTS = {'k1': 1, 'k5': 5, 'k50': 50}


def get_config(arg: str | None = None):
    default.check_variant(arg, tuple(VARIANTS))
    config = default.base('vae')
    config.model.net = 'mlp'
    config.model.hidden = (200, 200)
    config.model.activation = 'tanh'
    config.model.latent_dim = 50
    config.model.likelihood = 'bernoulli'
    config.model.num_importance_samples = VARIANTS[arg or 'k5']
    config.dataset.name = 'mnist'
    config.dataset.binarize = True
    config.lr = 1e-3
    config.optim.eps = 1e-4
    config.train.batch_size = 100
    config.train.num_steps = 3000
    config.train.eval_every = 1000
    config.train.checkpoint_every = 1000
    config.train.sample_every = 1000
    return config
