"""A deterministic conv autoencoder on MNIST: the reconstruction baseline of the VAEs.

  python launch.py --config configs/autoencoder_mnist.py --workdir runs/autoencoder

The VAE's conv nets (`configs/vae_mnist.py`) with a 32-d code and no prior, trained on the
Bernoulli cross-entropy of the reconstructions with Adam(1e-3): 1,876 steps of batch 64 (two
epochs). Measured on a 2-core CPU (shared, loaded): 2 min 3 s, and on the 10,000 test images
eval/psnr 23.23 dB, eval/mse 0.0058, eval/loss 61.5 nats per image. `:mse` trains on the
squared error.
"""

from configs import default


def get_config(arg: str | None = None):
    default.check_variant(arg, ('mse',))
    config = default.base('autoencoder')
    config.model.update(latent_dim=32, width=32, loss=arg or 'bernoulli')
    config.dataset.name = 'mnist'
    config.lr = 1e-3
    config.train.update(
        num_steps=1876, eval_every=938, checkpoint_every=938, sample_every=938, batch_size=64
    )
    config.sweep.metric = 'eval/psnr'
    return config
