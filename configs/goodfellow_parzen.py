"""Goodfellow et al. 2014, Table 1: Parzen-window log-likelihood of GAN samples on MNIST.

Their protocol: fit a Gaussian Parzen window to 10,000 generated samples (pixels in [0, 1]),
choose its width sigma by log-likelihood on a validation split, report the mean
log-likelihood of the test split with its standard error (paper: 225 +- 2). Here the
generator is trained on the first 50,000 training images and sigma is chosen on the last
10,000, as in the paper; the nets are this project's DCGAN (the paper used MLPs with maxout),
trained with the non-saturating generator loss for 50 epochs; samples come from an
exponential moving average of G's weights (decay 0.999), which smooths the generator's
oscillation around the end of training.
"""

from configs import dcgan_mnist, default


def get_config(arg: str | None = None):
    default.check_variant(arg, ())
    config = dcgan_mnist.get_config()
    config.dataset.train_split = 'train[:50000]'
    config.model.ema_decay = 0.999
    config.train.num_steps = 39_063  # 50 epochs of 50k images at batch 64
    config.train.eval_every = 3125
    config.train.checkpoint_every = 1000
    config.train.sample_every = 3125
    config.eval.metrics = ('parzen',)
    config.eval.num_samples = 10_000
    config.eval.parzen_validation_split = 'train[50000:]'
    config.sweep.metric = 'eval/parzen'
    return config
