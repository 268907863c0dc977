"""VAE-GAN (Larsen et al. 2016) on MNIST: VAE encoder, decoder shared as the GAN generator,
DCGAN discriminator whose last conv features measure the reconstruction error.

Losses and updates of the paper's Algorithm 1 (see `gen_models/models/vaegan.py`): encoder
on KL + feature-space likelihood, decoder on gamma * that likelihood + the GAN term on
reconstructions and prior samples, discriminator on the GAN loss; Adam(2e-4, b1=0.5) for all
three by default, 1,500 steps of 64 (a few minutes on a 2-core CPU). `:paper` uses the
optimiser of the authors' code (RMSProp, 3e-4 at batch 64), 128-d z, wider nets with 5x5
kernels and 30 epochs.
"""

from configs import default


def get_config(arg: str | None = None):
    default.check_variant(arg, ('paper',))
    config = default.base('vaegan')
    config.model.latent_dim = 32
    config.model.width = 32
    config.model.vaegan_gamma = 1.0
    config.model.gan_loss = 'non_saturating'
    config.dataset.name = 'mnist'
    config.lr = 2e-4
    config.optim.b1 = 0.5
    config.train.batch_size = 64
    config.train.num_steps = 1500
    config.train.eval_every = 500
    config.train.checkpoint_every = 500
    config.train.sample_every = 500
    config.sweep.metric = 'eval/recon_mse'
    config.sweep.mode = 'min'
    if arg == 'paper':
        config.lr = 3e-4
        config.optim.name = 'rmsprop'
        config.optim.b2 = 0.9
        config.model.latent_dim = 128
        config.model.width = 64
        config.model.kernel_size = 5
        config.train.num_steps = 28140  # 30 epochs of 60k images at batch 64
        config.train.eval_every = 4690
        config.train.checkpoint_every = 4690
        config.train.sample_every = 4690
    return config
