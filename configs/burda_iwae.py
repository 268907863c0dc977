"""Burda, Grosse & Salakhutdinov 2015, Table 1: VAE and IWAE with one stochastic layer.

The paper's setting on dynamically binarised MNIST: 784-200-200-50 tanh MLPs (the net of
`configs/iwae_mnist.py`), Adam(b1 0.9, b2 0.999, eps 1e-4), batch 20, trained on the
k-sample bound, and the learning-rate schedule of 3^i passes over the data at
1e-3 * 10^(-i/7) for stage i = 0 .. 7 (3,280 passes). Test NLL is estimated with the
k = 5000 importance-sampled bound on the full test set (paper: VAE 86.76, IWAE k=5 85.54).

Variants: ':vae' (k = 1) and ':iwae5' (k = 5) run the first 5 stages (121 passes, what a
2-core CPU allows in hours); ':vae_paper' and ':iwae5_paper' run all 8 stages.
"""

from configs import default, iwae_mnist

TRAIN_EXAMPLES = 60_000
BATCH_SIZE = 20
STEPS_PER_PASS = TRAIN_EXAMPLES // BATCH_SIZE
VARIANTS = {'vae': (1, 5), 'iwae5': (5, 5), 'vae_paper': (1, 8), 'iwae5_paper': (5, 8)}


def stage_boundaries(stages: int) -> tuple[int, ...]:
    """Train steps at which stage i = 1 .. stages-1 starts: after sum_{j<i} 3^j passes."""
    return tuple(STEPS_PER_PASS * sum(3**j for j in range(i)) for i in range(1, stages))


def get_config(arg: str | None = None):
    default.check_variant(arg, tuple(VARIANTS))
    k, stages = VARIANTS[arg or 'vae']
    config = iwae_mnist.get_config('k1')
    config.model.num_importance_samples = k
    config.optim.update(
        eps=1e-4,
        schedule='piecewise',
        schedule_boundaries=stage_boundaries(stages),
        schedule_scales=(10 ** (-1 / 7),) * (stages - 1),
    )
    num_steps = STEPS_PER_PASS * sum(3**i for i in range(stages))
    config.train.update(
        batch_size=BATCH_SIZE,
        num_steps=num_steps,
        log_every=1000,
        eval_every=num_steps // 10,
        checkpoint_every=num_steps // 40,
        sample_every=num_steps // 10,
        eval_batch_size=500,
    )
    config.eval.update(metrics=('iwae',), iwae_samples=5000, iwae_chunk=500)
    config.sweep.metric = 'eval/iwae'
    return config
