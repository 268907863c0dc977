"""A few golden runs recomputed on every test run: the numbers of `python -m tests.golden.golden
compare` (which checks every config to the bit) to tolerances that let a machine with other CPU
kernels pass while a change of what is computed fails.

The first train record (step 5) is held to 1e-4: other kernels move it by about 1e-7. Later
numbers are held to 2e-2: adversarial training amplifies those 1e-7 about tenfold every five
steps, which measured on a second Xeon 2e-3 by step 20 (goodfellow_parzen:dcgan's eval/g_loss),
while a changed loss or update moves the first record already."""

from __future__ import annotations

import json
import math

import pytest

from tests.golden import golden

RUNS = [
    ('burda_iwae', 'iwae5'),  # MLP VAE on the IWAE bound, binarised MNIST, the iwae metric
    ('dcgan_mnist', 'wgan_gp'),  # critic with gradient penalty, 5 D updates per step
    ('goodfellow_parzen', 'dcgan'),  # EMA generator, Parzen metrics during training
]


FIRST_RECORD_RTOL = 1e-4
LATER_RTOL = 2e-2


def _close(recorded, now, path=''):
    """Paths where `now` differs from `recorded` (floats to the relative tolerance of their
    place, see the module docstring); sample-grid hashes are left to the exact comparison."""
    if isinstance(recorded, dict):
        keys = (recorded.keys() | now.keys()) - {'images'}
        return [d for k in sorted(keys) for d in _close(recorded.get(k), now.get(k), f'{path}.{k}')]
    if isinstance(recorded, list) and isinstance(now, list) and len(recorded) == len(now):
        return [
            d for i, (a, b) in enumerate(zip(recorded, now)) for d in _close(a, b, f'{path}[{i}]')
        ]
    if isinstance(recorded, float) and isinstance(now, float):
        rtol = FIRST_RECORD_RTOL if path.startswith('.records[0]') else LATER_RTOL
        same = math.isclose(recorded, now, rel_tol=rtol, abs_tol=1e-6) or recorded == now
        return (
            []
            if same or (math.isnan(recorded) and math.isnan(now))
            else [f'{path}: {recorded} -> {now}']
        )
    return [] if recorded == now else [f'{path}: {recorded!r} -> {now!r}']


@pytest.mark.parametrize('name,variant', RUNS)
def test_golden_numbers_hold(name, variant, shared_data, data_dir, tmp_path):
    env = golden._environment(data_dir)
    now = json.loads(json.dumps(golden.record_run(name, variant, tmp_path, env)))
    recorded = json.loads((golden.GOLDEN_DIR / f'{golden.run_id(name, variant)}.json').read_text())
    assert _close(recorded, now) == []
