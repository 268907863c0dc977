"""The study's analysis on a sweep folder of known results: shares of variance against a
one-way ANOVA (scipy), the regulariser trend's sign, and the files it writes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.stats

from reproductions import disentanglement_study as study
from sweeps.ledger import SWEEP_FILE, TRIALS_DIR

VALUES = (10.0, 20.0, 50.0)


@pytest.fixture
def sweep_dir(tmp_path):
    """FactorVAE and beta-VAE trials, 3 values x 3 seeds: MIG grows with the value plus
    seed noise, the sampled TC falls with it."""
    rng = np.random.default_rng(0)
    trials = []
    for method, key in (('factor_vae', 'model.gamma'), ('beta_vae', 'model.beta')):
        for value in VALUES:
            for seed in range(3):
                trial_id = f'{method}_{value}_{seed}'
                overrides = {'model.method': method, key: value, 'seed': seed}
                trials.append({'id': trial_id, 'overrides': overrides})
                metrics = {f'eval/{name}': rng.uniform() for name in study.SCORES}
                metrics['eval/mig'] = value / 100 + rng.normal(0, 0.05)
                metrics['eval/tc_sampled'] = 5.0 / value + rng.normal(0, 0.01)
                folder = tmp_path / TRIALS_DIR / trial_id
                folder.mkdir(parents=True)
                (folder / 'results.json').write_text(json.dumps({'metrics': metrics}))
    (tmp_path / SWEEP_FILE).write_text(json.dumps({'trials': trials}))
    return tmp_path


def test_variance_share_is_eta_squared_of_a_one_way_anova(sweep_dir):
    records = study.collect(sweep_dir)
    assert len(records) == 18
    mine = [r for r in records if r['method'] == 'factor_vae']
    groups = [[r['metrics']['mig'] for r in mine if r['value'] == v] for v in VALUES]
    f_value = scipy.stats.f_oneway(*groups).statistic
    between, within = len(groups) - 1, len(mine) - len(groups)
    eta_squared = f_value * between / (f_value * between + within)
    share = study.variance_shares(records)['factor_vae']['mig']
    assert share == pytest.approx(eta_squared, rel=1e-9)


def test_the_regulariser_trend_and_the_report_files(sweep_dir):
    records = study.collect(sweep_dir)
    trends = study.regulariser_trends(records)
    assert trends['factor_vae']['spearman'] < -0.9
    assert list(trends['factor_vae']['median_tc']) == list(VALUES)
    correlations = study.rank_correlations(records)
    assert correlations.shape == (len(study.SCORES),) * 2
    np.testing.assert_allclose(np.diag(correlations), 1.0)
    study.main([str(sweep_dir)])
    text = (sweep_dir / 'study.md').read_text()
    assert '18 finished trials' in text and 'Spearman with the value' in text
    assert (sweep_dir / 'figure.png').stat().st_size > 10_000
