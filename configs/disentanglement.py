"""Disentanglement study (Locatello et al. 2019): six VAE families x six hyperparameters x seeds
on the embedded shapes (dSprites' factor grid), scored by six metrics.

  python launch.py --config configs/disentanglement.py:factor_vae --workdir runs/dis/factor
  python launch.py --mode sweep --config configs/disentanglement.py --workdir runs/dis/study
  python -m reproductions.disentanglement_study runs/dis/study   # table and figures

Variants: a method of `gen_models.models.disentangled_vae.METHODS` (default 'beta_vae') at CPU
size, or '<method>_paper' ('paper': beta_vae) at disentanglement_lib's size: 64 px, batch 64,
Adam(1e-4), 300,000 steps, the metrics at its sample counts (10,000 train / 5,000 test
points, BetaVAE and FactorVAE batches of 64).
The CPU size cuts (a 2-core CPU runs beta-VAE at 32 px at about 13 steps/s, 3 at 64 px):
32 px renderings, 3,000 steps (AnnealedVAE's capacity rises over the first third, as 100k of
300k steps do), metrics on 2,000 train / 1,000 test points, 200 / 100 BetaVAE and FactorVAE
points; a beta-VAE trial takes about 6 minutes (4 of training, 2 of metrics). The default (beta-VAE, beta 1) ends at eval/elbo
-46.8 nats, eval/mig 0.017, eval/beta_vae_score 0.69, eval/factor_vae_score 0.40.

`get_sweep()`: the study's grid, each method over its paper values (beta-VAE beta 1..16,
AnnealedVAE C_max 5..100, FactorVAE gamma 10..100, DIP-VAE-I/II lambda_od 1..50 with lambda_d
10x / 1x, beta-TCVAE beta 1..10) x 2 seeds (72 trials, about 8 h here: FactorVAE trains at half the speed); ':paper' takes the
paper size and 50 seeds, as Locatello et al.; a method variant (':factor_vae',
':factor_vae_paper') sweeps that method's values alone.
"""

from configs import default
from gen_models import sweep_algebra as hyper
from gen_models.models.disentangled_vae import METHODS

PAPER_STEPS = 300_000
CPU_STEPS = 3_000
PAPER_CAPACITY_STEPS = 100_000
VALUES = {
    'beta_vae': ('model.beta', (1.0, 2.0, 4.0, 6.0, 8.0, 16.0)),
    'annealed_vae': ('model.c_max', (5.0, 10.0, 25.0, 50.0, 75.0, 100.0)),
    'factor_vae': ('model.gamma', (10.0, 20.0, 30.0, 40.0, 50.0, 100.0)),
    'dip_vae_i': ('model.lambda_od', (1.0, 2.0, 5.0, 10.0, 20.0, 50.0)),
    'dip_vae_ii': ('model.lambda_od', (1.0, 2.0, 5.0, 10.0, 20.0, 50.0)),
    'beta_tcvae': ('model.beta', (1.0, 2.0, 4.0, 6.0, 8.0, 10.0)),
}
DIAGONAL_RATIO = {'dip_vae_i': 10.0, 'dip_vae_ii': 1.0}  # lambda_d / lambda_od
METRICS = (
    'beta_vae_score',
    'factor_vae_score',
    'mig',
    'dci',
    'sap',
    'modularity_explicitness',
    'gaussian_total_correlation',
)
VARIANTS = (*METHODS, *(f'{method}_paper' for method in METHODS), 'paper')


def get_config(arg: str | None = None):
    default.check_variant(arg, VARIANTS)
    paper = arg is not None and arg.endswith('paper')
    method = (arg or 'beta_vae').removesuffix('paper').removesuffix('_') or 'beta_vae'
    config = default.base('disentangled_vae')
    config.model.method = method
    config.model.lambda_d = DIAGONAL_RATIO.get(method, 10.0) * config.model.lambda_od
    config.dataset.name = 'shapes'
    config.dataset.shapes_resolution = 64 if paper else 32
    config.lr = 1e-4
    config.optim.update(b1=0.9, b2=0.999, eps=1e-8)
    num_steps = PAPER_STEPS if paper else CPU_STEPS
    config.model.capacity_steps = num_steps * PAPER_CAPACITY_STEPS // PAPER_STEPS
    config.train.update(
        batch_size=64,
        num_steps=num_steps,
        log_every=max(num_steps // 100, 10),
        checkpoint_every=num_steps // 10,
        sample_every=num_steps // 2,
        eval_every=num_steps // 10,
        eval_examples=2000,
        eval_batch_size=250,
        num_samples=36,
    )
    config.eval.update(metrics=METRICS, every=num_steps)  # the metrics once, at the end
    if not paper:
        config.eval.update(
            disentanglement_train=2000,
            disentanglement_test=1000,
            batch_points_train=200,
            batch_points_test=100,
            factor_vae_variance_points=2000,
        )
    config.sweep.metric = 'eval/mig'
    return config


def method_sweep(method: str) -> hyper.Sweep:
    """One method's trials over its hyperparameter (DIP-VAE: lambda_d tied to lambda_od)."""
    key, values = VALUES[method]
    trials = hyper.sweep(key, values)
    if method in DIAGONAL_RATIO:
        ratio = DIAGONAL_RATIO[method]
        trials = hyper.zipit(trials, hyper.sweep('model.lambda_d', [ratio * v for v in values]))
    return hyper.product(hyper.fixed('model.method', method), trials)


def get_sweep(arg: str | None = None) -> hyper.Sweep:
    """The study: every method over its values x 2 seeds ('paper': 50); a method variant
    sweeps that method alone ('<method>_paper': at the paper size)."""
    default.check_variant(arg, VARIANTS)
    paper = arg is not None and arg.endswith('paper')
    method = (arg or '').removesuffix('paper').removesuffix('_')
    trials = method_sweep(method) if method else hyper.chain(*(method_sweep(m) for m in METHODS))
    return hyper.product(trials, hyper.seeds(50 if paper else 2))
