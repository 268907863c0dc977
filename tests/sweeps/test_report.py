"""Sweep reports: tables, mean ± std over seeds against numpy, the best trial, plots."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
from PIL import Image

from experiments import logs
from sweeps import report

LRS = (0.001, 0.01, 0.1)
SEEDS = (0, 1, 2)
# Known final metrics: eval/loss[lr][seed] and eval/kl = 10 * loss.
LOSS = {0.001: (3.0, 3.5, 2.5), 0.01: (1.25, 1.0, 2.0), 0.1: (4.0, 4.5, math.nan)}


def _trial_id(lr, seed):
    return f'lr={lr}_seed={seed}'


def _write_sweep(workdir, mode='min', unfinished=((0.1, 2),)):
    """A sweep folder as the runner leaves it: 9 trials, `unfinished` without results."""
    trials = []
    for lr in LRS:
        for seed in SEEDS:
            trial_id = _trial_id(lr, seed)
            loss = LOSS[lr][seed]
            done = (lr, seed) not in unfinished
            trials.append(
                {
                    'id': trial_id,
                    'overrides': {'lr': lr, 'seed': seed},
                    'status': 'done' if done else 'failed',
                    'error': None if done else 'NonFiniteError: non-finite loss at step 3',
                }
            )
            with logs.MetricWriter(workdir / 'trials' / trial_id) as writer:
                for step in (10, 20):
                    writer.write_scalars(step, {'loss': loss * 30 / step}, prefix='train')
                if done:
                    writer.write_scalars(20, {'loss': loss}, prefix='eval')
                    results = {'step': 20, 'metrics': {'eval/loss': loss, 'eval/kl': 10 * loss}}
                    logs.write_json(workdir / 'trials' / trial_id / 'results.json', results)
    base = {'sweep': {'metric': 'eval/loss', 'mode': mode}, 'lr': 0.5, 'seed': 0}
    logs.write_json(workdir / 'sweep.json', {'base_config': base, 'trials': trials})


def test_mean_std_over_seeds_match_numpy(tmp_path):
    _write_sweep(tmp_path, unfinished=())
    groups = report.group_over_seeds(report.collect(tmp_path))
    assert [g.setting for g in groups] == [{'lr': lr} for lr in LRS]
    for group, lr in zip(groups, LRS, strict=True):
        values = np.array(LOSS[lr])
        assert group.n == 3 and group.ids == [_trial_id(lr, s) for s in SEEDS]
        if lr == 0.1:  # A NaN seed makes the setting's mean NaN: reported, not hidden.
            assert math.isnan(group.mean['eval/loss'])
            continue
        assert group.mean['eval/loss'] == pytest.approx(np.mean(values), rel=1e-12)
        assert group.std['eval/loss'] == pytest.approx(np.std(values, ddof=1), rel=1e-12)
        assert group.std['eval/kl'] == pytest.approx(np.std(10 * values, ddof=1), rel=1e-12)


def test_report_tables_best_trial_and_plots(tmp_path):
    _write_sweep(tmp_path)
    paths = report.write_report(tmp_path)
    assert [p.name for p in paths] == [
        'summary.csv',
        'summary.md',
        'eval-loss_vs_lr.png',
        'curves_loss.png',
    ]
    for path in paths[2:]:
        with Image.open(path) as image:
            assert image.size[0] > 300 and image.size[1] > 200

    with (tmp_path / 'summary.csv').open() as file:
        rows = list(csv.DictReader(file))
    assert list(rows[0]) == ['id', 'status', 'lr', 'seed', 'step', 'eval/kl', 'eval/loss', 'error']
    assert [r['id'] for r in rows] == [_trial_id(lr, s) for lr in LRS for s in SEEDS]
    assert [r['status'] for r in rows].count('done') == 8
    last = rows[-1]
    assert (last['status'], last['eval/loss'], last['error']) == (
        'failed',
        '',
        'NonFiniteError: non-finite loss at step 3',
    )
    assert [float(r['eval/loss']) for r in rows[:3]] == list(LOSS[0.001])

    markdown = (tmp_path / 'summary.md').read_text()
    assert '9 trials: 8 done, 1 failed. Ranked by `eval/loss` (min is best).' in markdown
    assert '`lr=0.01_seed=1`: eval/loss = 1 ' in markdown  # the smallest loss
    for lr in (0.001, 0.01):
        values = np.array(LOSS[lr])
        mean, std = np.mean(values), np.std(values, ddof=1)
        assert f'| {lr} | 3 | {10 * mean:.4g} ± {10 * std:.2g} | {mean:.4g} ± {std:.2g} |' in (
            markdown
        )
    # lr=0.1 has two finished seeds; the failed one is not counted.
    mean, std = np.mean(LOSS[0.1][:2]), np.std(LOSS[0.1][:2], ddof=1)
    assert f'| 0.1 | 2 | {10 * mean:.4g} ± {10 * std:.2g} | {mean:.4g} ± {std:.2g} |' in markdown
    assert '- `lr=0.1_seed=2`: NonFiniteError' in markdown
    assert '![curves_loss](plots/curves_loss.png)' in markdown


def test_best_trial_follows_mode_and_skips_non_finite(tmp_path):
    _write_sweep(tmp_path, mode='max', unfinished=())
    summary = report.collect(tmp_path)
    assert report.best_trial(summary).id == 'lr=0.1_seed=1'  # 4.5; the NaN trial is skipped
    _write_sweep(tmp_path, mode='min', unfinished=())
    assert report.best_trial(report.collect(tmp_path)).id == 'lr=0.01_seed=1'


def test_partial_sweep_reports_from_the_command_line(tmp_path, capsys):
    everything = tuple((lr, s) for lr in LRS for s in SEEDS)
    _write_sweep(tmp_path, unfinished=everything)
    report.main([str(tmp_path)])
    assert capsys.readouterr().out.split() == [
        str(tmp_path / 'summary.csv'),
        str(tmp_path / 'summary.md'),
    ]
    markdown = (tmp_path / 'summary.md').read_text()
    assert 'No finished trial reports `eval/loss` yet.' in markdown
    assert '9 trials: 9 failed.' in markdown
