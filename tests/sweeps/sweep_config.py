"""A tiny sweep for tests: an MLP VAE on 28 px shapes, lr x seed (4 trials of 300 steps).

Variants: `:with_failure` adds a trial with an unknown dataset (fails when it starts);
`:one_and_failure` is the first trial and that failing one.
"""

from configs import default
from gen_models import sweep_algebra as hyper

FAILING = hyper.fixed('dataset.name', 'no_such_dataset')


def get_config(arg: str | None = None):
    default.check_variant(arg, ('with_failure', 'one_and_failure'))
    config = default.base('vae')
    config.model.net = 'mlp'
    config.model.hidden = (16,)
    config.model.latent_dim = 4
    config.dataset.shapes_resolution = 28
    config.train.update(
        num_steps=300,
        batch_size=8,
        log_every=50,
        eval_every=300,
        checkpoint_every=100,
        sample_every=300,
        eval_batch_size=8,
        eval_examples=16,
        num_samples=4,
        progress_bar=False,
    )
    return config


def get_sweep(arg: str | None = None) -> hyper.Sweep:
    trials = hyper.product(hyper.sweep('lr', [1e-3, 3e-3]), hyper.seeds(2))
    if arg == 'with_failure':
        return trials + FAILING
    if arg == 'one_and_failure':
        return trials[:1] + FAILING
    return trials
