"""DCGAN on CIFAR-10 at 32 px after StudioGAN's CIFAR10/DCGAN.yaml (Kang et al.).

That config: the 'deep_conv' nets, z of 128, batch 64, the non-saturating ('vanilla') loss,
Adam(2e-4, b1=0.5, b2=0.999), 2 D updates per step (each on its own batch), 200k steps,
unconditional; StudioGAN reports FID 48.29 for it (50k generated images against the training
set, their Inception port). `:paper` matches those settings on this project's DCGAN nets: G
4x4x512 -> 256 -> 128 -> 3 channels (StudioGAN's ends 64 channels -> conv 3x3), D 128 -> 256
-> 512 channels in stride-2 convs (StudioGAN's has a 3x3 conv before each, batch norm and
LeakyReLU(0.1), and global sum pooling); the FID is therefore not expected to match theirs to
the digit. Its evaluation is StudioGAN's: FID (and KID) of 50,000 samples against the whole
training set.

The default is the scale a 2-core CPU allows (the FID Inception runs at about 13 images/s
there): the recipe at width 32 for 12,000 steps (24,000 D updates of 64 images, about 31
epochs of D data), then FID and KID of 1,000 samples against the first 1,000 training
images. FID from 1,000 samples is biased upwards against 50k-sample FID; KID is unbiased.
"""

from configs import default


def get_config(arg: str | None = None):
    default.check_variant(arg, ('paper',))
    config = default.base('gan')
    config.lr = 2e-4
    config.model.net = 'conv'
    config.model.gan_loss = 'non_saturating'
    config.model.n_critic = 2
    config.model.d_dropout = 0.0
    config.model.latent_dim = 128
    config.model.width = 32
    config.dataset.name = 'cifar10'
    config.optim.b1, config.optim.b2 = 0.5, 0.999
    config.train.batch_size = 2 * 64  # 64 images per D update
    config.train.num_steps = 12_000
    config.train.eval_every = 2000
    config.train.checkpoint_every = 1000
    config.train.sample_every = 2000
    config.eval.metrics = ('fid', 'kid')
    config.eval.num_samples = 1000
    config.eval.reference_examples = 1000
    if arg == 'paper':
        config.model.width = 128
        config.train.num_steps = 200_000
        config.train.eval_every = 10_000
        config.train.checkpoint_every = 10_000
        config.train.sample_every = 10_000
        config.eval.num_samples = 50_000
        config.eval.reference_examples = 0
    return config
