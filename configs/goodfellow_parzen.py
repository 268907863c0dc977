"""Goodfellow et al. 2014, Table 1: Parzen-window log-likelihood of GAN samples on MNIST.

Their protocol: fit a Gaussian Parzen window to 10,000 generated samples (pixels in [0, 1]),
choose its width sigma by log-likelihood on a validation split, report the mean
log-likelihood of the test split with its standard error (paper: 225 +- 2). The generator
is trained on the first 50,000 training images and sigma is chosen on the last 10,000, as in
the paper.

Default: the paper's nets and optimiser (github.com/goodfeli/adversarial, mnist.yaml).
G: 100 Gaussian latents -> 1200 ReLU -> 1200 ReLU -> 784 sigmoid (mapped to the [-1, 1]
images the GAN trains on); D: two layers of 240 maxout units of 5 pieces -> sigmoid,
dropout 0.2 on its input and 0.5 on its hidden layers; the non-saturating G loss; SGD at
lr 0.1 decayed by 1.000004 per batch, momentum 0.5 rising to 0.7 over 250 epochs, batch
100, for 1,500 epochs. The paper does not say how many: nothing in its recipe stops
training, and its decay takes the rate to 0.0050 at 1,500 epochs and 0.0018 at 2,000. No
schedule depends on the run's length, so a longer run resumed from this one's checkpoint
is the same run. D's loss here is the sum of its real and fake terms and the paper's their
mean, so D's learning rate is halved to take the same steps. Weights start uniform in
+-0.05 (G) and +-0.005 (D). Not reproduced: G's output biases set from the pixel marginals
(here 0). The paper's code updates G and D from one shared forward pass; here D steps
first and G then steps against the updated D (its Algorithm 1), because
`model.simultaneous_update=True`, their scheme, scored 75.0 against 111.5 after 30 epochs.

':dcgan': the project's DCGAN nets with Adam, sampled from an exponential moving average of
G's weights (decay 0.999), for 50 epochs at batch 64.
"""

from configs import dcgan_mnist, default

TRAIN_EXAMPLES = 50_000
EPOCHS = 1500
BATCH_SIZE = 100
STEPS_PER_EPOCH = TRAIN_EXAMPLES // BATCH_SIZE


def _protocol(config) -> None:
    """The paper's data split and Parzen-window evaluation, shared by every variant."""
    config.dataset.train_split = 'train[:50000]'
    config.eval.metrics = ('parzen', 'parzen_reference')  # the second: real images' value
    config.eval.num_samples = 10_000
    config.eval.parzen_validation_split = 'train[50000:]'
    config.sweep.metric = 'eval/parzen'


def get_config(arg: str | None = None):
    default.check_variant(arg, ('dcgan',))
    if arg == 'dcgan':
        config = dcgan_mnist.get_config()
        config.model.ema_decay = 0.999
        config.train.num_steps = 39_063  # 50 epochs of 50k images at batch 64
        config.train.eval_every = 3125
        config.train.checkpoint_every = 1000
        config.train.sample_every = 3125
        _protocol(config)
        return config
    config = default.base('gan')
    config.model.update(
        net='mlp',
        latent_dim=100,
        hidden=(1200, 1200),
        activation='relu',
        d_hidden=(240, 240),
        maxout_pieces=5,
        d_input_dropout=0.2,
        d_dropout=0.5,
        g_init_range=0.05,
        d_init_range=0.005,
        gan_loss='non_saturating',
    )
    config.dataset.name = 'mnist'
    config.lr = 0.1
    config.optim.update(
        name='sgd',
        b1=0.5,
        final_momentum=0.7,
        momentum_ramp_steps=250 * STEPS_PER_EPOCH,
        schedule='exponential',
        decay_rate=1 / 1.000004,
        d_lr_multiplier=0.5,
    )
    config.train.update(
        batch_size=BATCH_SIZE,
        num_steps=EPOCHS * STEPS_PER_EPOCH,
        log_every=500,
        eval_every=10 * STEPS_PER_EPOCH,
        checkpoint_every=2 * STEPS_PER_EPOCH,
        sample_every=10 * STEPS_PER_EPOCH,
    )
    config.eval.every = 10 * STEPS_PER_EPOCH  # the Parzen estimate as training goes on
    _protocol(config)
    return config
