"""Kingma & Welling 2013, Figure 2: the AEVB lower bound against training samples seen.

MLP VAE with one tanh hidden layer (500 units for MNIST, 200 for Frey Face), Bernoulli
decoder on MNIST (dynamically binarised) and Gaussian decoder on Frey Face (the paper's
Gaussian MLP: mean through a sigmoid and a log std per pixel, both from the decoder),
Adagrad, minibatch 100, one z sample per image. `get_sweep` runs the
figure's latent sizes (3, 5, 10, 20, 200 for MNIST; 3, 5, 10, 20 for Frey Face) with one
seed; `reproductions/reproduce.py` redraws the figure from the trials' metrics.jsonl.

Variants: ':mnist' (default) and ':frey'. The paper trains up to 1e8 samples; these
configs stop at 1e7 (100,000 steps), which the README's table states.
"""

from configs import default
from gen_models import sweep_algebra as hyper

VARIANTS = ('mnist', 'frey')
LATENT_SIZES = {'mnist': (3, 5, 10, 20, 200), 'frey': (3, 5, 10, 20)}
SAMPLES_SEEN = 10_000_000
BATCH_SIZE = 100


def get_config(arg: str | None = None):
    default.check_variant(arg, VARIANTS)
    variant = arg or 'mnist'
    config = default.base('vae')
    config.model.update(net='mlp', activation='tanh', latent_dim=20)
    config.optim.name = 'adagrad'
    if variant == 'mnist':
        config.model.update(hidden=(500,), likelihood='bernoulli')
        config.dataset.update(name='mnist', binarize=True)
        config.lr = 0.02
    else:
        config.model.update(
            hidden=(200,), likelihood='gaussian', decoder_std=0.1, decoder_std_per_pixel=True
        )
        config.dataset.name = 'frey_faces'
        config.lr = 0.01
    num_steps = SAMPLES_SEEN // BATCH_SIZE
    config.train.update(
        batch_size=BATCH_SIZE,
        num_steps=num_steps,
        log_every=500,
        eval_every=num_steps // 20,
        checkpoint_every=num_steps // 20,
        sample_every=num_steps // 4,
        eval_batch_size=128 if variant == 'mnist' else 64,
    )
    config.sweep.metric = 'eval/elbo'
    return config


def get_sweep(arg: str | None = None) -> hyper.Sweep:
    """The figure's latent sizes, one seed each."""
    default.check_variant(arg, VARIANTS)
    return hyper.sweep('model.latent_dim', list(LATENT_SIZES[arg or 'mnist']))
