"""The disentanglement study's analysis (Locatello et al. 2019), from a sweep folder's results.

  python -m reproductions.disentanglement_study runs/dis/study

Reads each finished trial's results.json (method, its swept hyperparameter, seed, metrics)
and writes `study.md` and `figure.png` into the sweep folder:
1. the Spearman rank correlation between the metrics over all trials (their Fig. 4);
2. each metric per method and hyperparameter value, box plots over seeds (their Fig. 7);
3. the share of each metric's variance within a method that the hyperparameter explains
   (between-value sum of squares over the total); the rest is the seed's (their finding:
   seeds matter about as much as hyperparameters);
4. whether the regulariser lowers what it targets: the total correlation of the sampled
   representation against FactorVAE's gamma and beta-TCVAE's beta (rank correlation).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.stats

from sweeps.ledger import sweep_trials

# The score each metric contributes (its main output), in the order of the study's figures.
SCORES = (
    'beta_vae_score',
    'factor_vae_score',
    'mig',
    'dci_disentanglement',
    'sap',
    'modularity',
)
HYPERPARAMETER = {
    'beta_vae': 'model.beta',
    'annealed_vae': 'model.c_max',
    'factor_vae': 'model.gamma',
    'dip_vae_i': 'model.lambda_od',
    'dip_vae_ii': 'model.lambda_od',
    'beta_tcvae': 'model.beta',
}
TARGETED = {'factor_vae': 'model.gamma', 'beta_tcvae': 'model.beta'}
TC = 'tc_sampled'


def collect(sweep_dir: Path) -> list[dict[str, Any]]:
    """One record per finished trial: method, value (of its hyperparameter), seed, and
    its eval metrics without the 'eval/' prefix."""
    records = []
    for overrides, workdir in sweep_trials(sweep_dir):
        results_path = workdir / 'results.json'
        if not results_path.is_file():
            continue
        results = json.loads(results_path.read_text())
        method = overrides['model.method']
        records.append(
            {
                'method': method,
                'value': overrides[HYPERPARAMETER[method]],
                'seed': overrides.get('seed', 0),
                'metrics': {
                    k.removeprefix('eval/'): v
                    for k, v in results['metrics'].items()
                    if k.startswith('eval/')
                },
            }
        )
    return records


def rank_correlations(records: list[dict[str, Any]], names: Sequence[str] = SCORES) -> np.ndarray:
    """(M, M) Spearman correlations between metrics over the trials."""
    table = np.array([[r['metrics'][n] for n in names] for r in records], np.float64)
    if len(table) < 3:
        return np.full((len(names), len(names)), np.nan)
    return np.atleast_2d(scipy.stats.spearmanr(table).statistic)


def explained_by_hyperparameter(values: Sequence[float], scores: Sequence[float]) -> float:
    """Between-group sum of squares / total sum of squares of `scores` grouped by `values`
    (eta squared); nan when the scores do not vary."""
    values, scores = np.asarray(values), np.asarray(scores, np.float64)
    total = np.sum((scores - scores.mean()) ** 2)
    if total == 0:
        return float('nan')
    between = sum(
        np.sum(values == v) * (scores[values == v].mean() - scores.mean()) ** 2
        for v in np.unique(values)
    )
    return float(between / total)


def variance_shares(records: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """{method: {metric: share of variance its hyperparameter explains}}."""
    shares: dict[str, dict[str, float]] = {}
    for method in _methods(records):
        mine = [r for r in records if r['method'] == method]
        shares[method] = {
            name: explained_by_hyperparameter(
                [r['value'] for r in mine], [r['metrics'][name] for r in mine]
            )
            for name in SCORES
        }
    return shares


def regulariser_trends(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """For FactorVAE and beta-TCVAE: median sampled TC per hyperparameter value and the
    Spearman correlation of TC with the value (negative: the penalty lowers it)."""
    trends = {}
    for method in TARGETED:
        mine = [r for r in records if r['method'] == method and TC in r['metrics']]
        if len({r['value'] for r in mine}) < 2:
            continue
        values = [r['value'] for r in mine]
        tcs = [r['metrics'][TC] for r in mine]
        trends[method] = {
            'median_tc': {
                v: float(np.median([t for x, t in zip(values, tcs) if x == v]))
                for v in sorted(set(values))
            },
            'spearman': float(scipy.stats.spearmanr(values, tcs).statistic),
        }
    return trends


def _methods(records: list[dict[str, Any]]) -> list[str]:
    return [m for m in HYPERPARAMETER if any(r['method'] == m for r in records)]


def draw(records: list[dict[str, Any]], path: Path) -> Path:
    """The study's four panels in one figure."""
    import matplotlib

    matplotlib.use('Agg')
    from matplotlib import pyplot as plt

    figure = plt.figure(figsize=(16, 11))
    grid = figure.add_gridspec(3, 6)
    heatmap = figure.add_subplot(grid[0, :2])
    correlations = rank_correlations(records)
    image = heatmap.imshow(correlations, vmin=-1, vmax=1, cmap='RdBu_r')
    heatmap.set_xticks(range(len(SCORES)), SCORES, rotation=60, fontsize=7)
    heatmap.set_yticks(range(len(SCORES)), SCORES, fontsize=7)
    heatmap.set_title('rank correlation between metrics')
    figure.colorbar(image, ax=heatmap, fraction=0.046)
    _draw_shares(figure.add_subplot(grid[0, 2:4]), variance_shares(records))
    _draw_trends(figure.add_subplot(grid[0, 4:]), records)
    for index, name in enumerate(SCORES):
        _draw_boxes(
            figure.add_subplot(grid[1 + index // 3, 2 * (index % 3) : 2 * (index % 3) + 2]),
            records,
            name,
        )
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def _draw_shares(axes, shares: dict[str, dict[str, float]]) -> None:
    width = 0.8 / max(len(shares), 1)
    for index, (method, by_metric) in enumerate(shares.items()):
        positions = np.arange(len(SCORES)) + index * width
        axes.bar(positions, [by_metric[n] for n in SCORES], width, label=method)
    axes.set_xticks(np.arange(len(SCORES)) + 0.4, SCORES, rotation=60, fontsize=7)
    axes.set_ylim(0, 1)
    axes.set_title('variance explained by the hyperparameter (rest: seed)')
    axes.legend(fontsize=6)


def _draw_trends(axes, records: list[dict[str, Any]]) -> None:
    for method in TARGETED:
        mine = [r for r in records if r['method'] == method and TC in r['metrics']]
        if mine:
            axes.scatter([r['value'] for r in mine], [r['metrics'][TC] for r in mine], label=method)
    axes.set_xscale('log')
    axes.set_xlabel('gamma (FactorVAE) / beta (beta-TCVAE)')
    axes.set_ylabel('total correlation, sampled representation')
    axes.legend(fontsize=7)


def _draw_boxes(axes, records: list[dict[str, Any]], name: str) -> None:
    groups, labels = [], []
    for method in _methods(records):
        for value in sorted({r['value'] for r in records if r['method'] == method}):
            groups.append(
                [
                    r['metrics'][name]
                    for r in records
                    if r['method'] == method and r['value'] == value
                ]
            )
            labels.append(f'{method} {value:g}')
    axes.boxplot(groups)
    axes.set_xticks(range(1, len(labels) + 1), labels, rotation=90, fontsize=5)
    axes.set_title(name, fontsize=9)


def report(records: list[dict[str, Any]]) -> str:
    """study.md: the correlation matrix, the variance shares and the regulariser trends."""
    lines = [f'# Disentanglement study: {len(records)} finished trials', '']
    correlations = rank_correlations(records)
    lines += ['## Rank correlation between metrics', '', '| | ' + ' | '.join(SCORES) + ' |']
    lines.append('|---' * (len(SCORES) + 1) + '|')
    for name, row in zip(SCORES, correlations):
        lines.append(f'| {name} | ' + ' | '.join(f'{v:.2f}' for v in row) + ' |')
    lines += ['', '## Share of variance the hyperparameter explains (the rest: seed)', '']
    lines += ['| method | ' + ' | '.join(SCORES) + ' |', '|---' * (len(SCORES) + 1) + '|']
    for method, by_metric in variance_shares(records).items():
        lines.append(f'| {method} | ' + ' | '.join(f'{by_metric[n]:.2f}' for n in SCORES) + ' |')
    lines += ['', '## Total correlation of the sampled representation', '']
    for method, trend in regulariser_trends(records).items():
        medians = ', '.join(f'{v:g}: {t:.3f}' for v, t in trend['median_tc'].items())
        lines.append(
            f'- {method} ({TARGETED[method]}): median TC by value {medians}; '
            f'Spearman with the value {trend["spearman"]:.2f}'
        )
    return '\n'.join(lines) + '\n'


def write(sweep_dir: Path) -> Path:
    """study.md and figure.png of the finished trials; returns the figure's path."""
    records = collect(sweep_dir)
    (sweep_dir / 'study.md').write_text(report(records))
    return draw(records, sweep_dir / 'figure.png')


def table_rows(sweep_dir: Path) -> list[Any]:
    """The reproductions table's rows: per method, the median MIG over seeds at its best
    value, with the trials finished of those planned."""
    from reproductions.reproduce import Row

    if not (sweep_dir / 'sweep.json').is_file():
        return [Row('MIG per method', 'Fig. 7 (plot)', 'not run', '')]
    planned = len(sweep_trials(sweep_dir))
    records = collect(sweep_dir)
    rows = []
    for method in _methods(records):
        mine = [r for r in records if r['method'] == method]
        medians = {
            v: float(np.median([r['metrics']['mig'] for r in mine if r['value'] == v]))
            for v in {r['value'] for r in mine}
        }
        best = max(medians, key=medians.get)
        rows.append(
            Row(
                f'{method}: MIG, median over seeds at the best {HYPERPARAMETER[method]}',
                'Fig. 7 (plot)',
                f'{medians[best]:.3f} ({HYPERPARAMETER[method]}={best:g})',
                f'{len(records)} of {planned} trials finished; study.md, figure.png',
            )
        )
    return rows or [Row('MIG per method', 'Fig. 7 (plot)', 'in progress', '')]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('sweep_dir', type=Path)
    args = parser.parse_args(argv)
    if not collect(args.sweep_dir):
        parser.exit(2, f'{args.sweep_dir}: no finished trial (results.json) yet\n')
    write(args.sweep_dir)
    print((args.sweep_dir / 'study.md').read_text())


if __name__ == '__main__':
    main()
