"""Conv VAE on CIFAR-10 with the discretised logistic likelihood of 8-bit pixels, reported in
bits per dimension (nats per image / (3072 ln 2)), as likelihood results on CIFAR-10 are.

The decoder gives each pixel's mean; the logistic scale is a learned parameter per colour
channel (Kingma et al. 2016 learn one shared scale). By default 1,500 steps of 64 with a
narrow net (a few minutes on a 2-core CPU); `:long` is a wider net trained for 50 epochs.
`:iwae` trains on the 5-sample IWAE bound instead of the ELBO.
"""

from configs import default


def get_config(arg: str | None = None):
    default.check_variant(arg, ('long', 'iwae'))
    config = default.base('vae')
    config.model.net = 'conv'
    config.model.latent_dim = 64
    config.model.width = 32
    config.model.likelihood = 'logistic'
    config.model.decoder_std = 0.1  # initial logistic scale, in [0, 1] pixel units
    config.model.learn_decoder_std = True
    config.dataset.name = 'cifar10'
    config.lr = 1e-3
    config.train.batch_size = 64
    config.train.num_steps = 1500
    config.train.eval_every = 500
    config.train.checkpoint_every = 500
    config.train.sample_every = 500
    config.sweep.metric = 'eval/bits_per_dim'
    config.sweep.mode = 'min'
    if arg == 'long':
        config.model.latent_dim = 128
        config.model.width = 64
        config.train.num_steps = 39050  # 50 epochs of 50k images at batch 64
        config.train.eval_every = 3905
        config.train.checkpoint_every = 3905
        config.train.sample_every = 3905
    if arg == 'iwae':
        config.model.num_importance_samples = 5
    return config
