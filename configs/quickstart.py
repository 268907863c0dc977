"""Quick start: a conv VAE on the embedded shapes dataset (no download), ~2 CPU minutes."""

from configs import default


def get_config(arg: str | None = None):
    default.check_variant(arg, ())
    config = default.base('vae')
    config.train.num_steps = 1500
    config.train.eval_every = 500
    config.train.checkpoint_every = 500
    config.train.sample_every = 500
    config.train.eval_examples = 1000
    return config
