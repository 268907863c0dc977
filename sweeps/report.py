"""Tables and plots of a sweep, from sweep.json and each trial's results.json and metrics.jsonl.

  python -m sweeps.report runs/sweeps/x      # also on a partial or still running sweep

writes into the sweep folder:
  summary.csv   one row per trial: id, status, overrides, step, final metrics, error
  summary.md    the best trial by `sweep.metric`, mean ± std and n over seeds per setting
                (std: sample standard deviation, ddof=1), every trial, the plots
  plots/        the metric against each swept hyperparameter (mean ± std over seeds), and
                learning curves of every trial from metrics.jsonl
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from experiments import logs
from sweeps.ledger import SWEEP_FILE, TRIALS_DIR

SEED_KEY = 'seed'
MAX_LEGEND = 20
MAX_TICKS = 10


@dataclasses.dataclass(frozen=True)
class Row:
    """One trial: its overrides, status and final metrics (empty until it finished)."""

    id: str
    status: str
    overrides: dict[str, Any]
    step: int | None
    metrics: dict[str, float]
    error: str | None


@dataclasses.dataclass(frozen=True)
class Group:
    """Finished trials with the same overrides apart from the seed."""

    setting: dict[str, Any]
    ids: list[str]
    mean: dict[str, float]
    std: dict[str, float]  # ddof=1; nan for a single trial

    @property
    def n(self) -> int:
        return len(self.ids)


@dataclasses.dataclass(frozen=True)
class Summary:
    rows: list[Row]
    keys: list[str]  # swept keys in order of first appearance
    metrics: list[str]  # metric names of finished trials, sorted
    metric: str  # the ranking metric (config sweep.metric)
    mode: str  # 'max' | 'min'

    @property
    def finished(self) -> list[Row]:
        return [row for row in self.rows if row.status == 'done']


def collect(workdir: str | os.PathLike[str]) -> Summary:
    """The sweep in `workdir` as rows: what sweep.json lists, with results read from disk."""
    workdir = Path(workdir)
    sweep = json.loads((workdir / SWEEP_FILE).read_text())
    rows = []
    for trial in sweep['trials']:
        results_path = workdir / TRIALS_DIR / trial['id'] / 'results.json'
        results = json.loads(results_path.read_text()) if results_path.is_file() else None
        rows.append(
            Row(
                id=trial['id'],
                status='done' if results else trial['status'],
                overrides=trial['overrides'],
                step=results and results['step'],
                metrics=results['metrics'] if results else {},
                error=None if results else trial.get('error'),
            )
        )
    keys = list(dict.fromkeys(key for row in rows for key in row.overrides))
    sweep_config = sweep['base_config']['sweep']
    return Summary(
        rows=rows,
        keys=keys,
        metrics=sorted({name for row in rows for name in row.metrics}),
        metric=sweep_config['metric'],
        mode=sweep_config['mode'],
    )


def group_over_seeds(summary: Summary) -> list[Group]:
    """Mean and sample std (ddof=1) of every metric over trials that differ only in seed."""
    members: dict[str, list[Row]] = {}
    for row in summary.finished:
        setting = {k: v for k, v in row.overrides.items() if k != SEED_KEY}
        members.setdefault(json.dumps(setting, sort_keys=True), []).append(row)
    groups = []
    for rows in members.values():
        values = {
            name: np.array([row.metrics[name] for row in rows if name in row.metrics])
            for name in summary.metrics
        }
        groups.append(
            Group(
                setting={k: v for k, v in rows[0].overrides.items() if k != SEED_KEY},
                ids=[row.id for row in rows],
                mean={name: float(np.mean(v)) for name, v in values.items() if len(v)},
                std={
                    name: float(np.std(v, ddof=1)) if len(v) > 1 else math.nan
                    for name, v in values.items()
                    if len(v)
                },
            )
        )
    return groups


def best_trial(summary: Summary) -> Row | None:
    """The finished trial with the best `summary.metric`, None when none has it."""
    ranked = [
        row for row in summary.finished if math.isfinite(row.metrics.get(summary.metric, math.nan))
    ]
    if not ranked:
        return None
    pick = max if summary.mode == 'max' else min
    return pick(ranked, key=lambda row: row.metrics[summary.metric])


def write_report(workdir: str | os.PathLike[str]) -> list[Path]:
    """Writes summary.csv, summary.md and plots/*.png into the sweep folder; returns paths."""
    workdir = Path(workdir)
    summary = collect(workdir)
    groups = group_over_seeds(summary)
    plots = _write_plots(workdir, summary, groups)
    csv_path, md_path = workdir / 'summary.csv', workdir / 'summary.md'
    _write_csv(csv_path, summary)
    md_path.write_text(_markdown(workdir, summary, groups, plots), encoding='utf-8')
    return [csv_path, md_path, *plots]


def _write_csv(path: Path, summary: Summary) -> None:
    with path.open('w', newline='', encoding='utf-8') as file:
        writer = csv.writer(file)
        writer.writerow(['id', 'status', *summary.keys, 'step', *summary.metrics, 'error'])
        for row in summary.rows:
            writer.writerow(
                [
                    row.id,
                    row.status,
                    *(_cell(row.overrides.get(key, '')) for key in summary.keys),
                    '' if row.step is None else row.step,
                    *(
                        repr(row.metrics[name]) if name in row.metrics else ''
                        for name in summary.metrics
                    ),
                    row.error or '',
                ]
            )


def _cell(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def _number(value: float) -> str:
    return f'{value:.4g}'


def _mean_std(group: Group, name: str) -> str:
    if name not in group.mean:
        return ''
    std = group.std[name]
    return _number(group.mean[name]) + ('' if math.isnan(std) else f' ± {std:.2g}')


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    lines += ['| ' + ' | '.join(str(cell) for cell in row) + ' |' for row in rows]
    return lines


def _markdown(workdir: Path, summary: Summary, groups: list[Group], plots: list[Path]) -> str:
    counts: dict[str, int] = {}
    for row in summary.rows:
        counts[row.status] = counts.get(row.status, 0) + 1
    lines = [
        f'# Sweep {workdir.name}',
        '',
        f'{len(summary.rows)} trials: '
        + ', '.join(f'{n} {status}' for status, n in sorted(counts.items()))
        + f'. Ranked by `{summary.metric}` ({summary.mode} is best).',
        '',
        '## Best trial',
        '',
    ]
    best = best_trial(summary)
    if best is None:
        lines.append(f'No finished trial reports `{summary.metric}` yet.')
    else:
        lines.append(
            f'`{best.id}`: {summary.metric} = {_number(best.metrics[summary.metric])} '
            f'(overrides: `{json.dumps(best.overrides)}`)'
        )
    settings = [key for key in summary.keys if key != SEED_KEY]
    if SEED_KEY in summary.keys and groups:
        lines += [
            '',
            '## Mean ± std over seeds',
            '',
            'std is the sample standard deviation (ddof=1); n counts finished seeds.',
            '',
        ]
        lines += _table(
            [*settings, 'n', *summary.metrics],
            [
                [*(_cell(g.setting.get(k, '')) for k in settings), g.n]
                + [_mean_std(g, name) for name in summary.metrics]
                for g in groups
            ],
        )
    lines += ['', '## Trials', '']
    lines += _table(
        ['id', 'status', *summary.keys, *summary.metrics],
        [
            [f'`{row.id}`', row.status, *(_cell(row.overrides.get(k, '')) for k in summary.keys)]
            + [_number(row.metrics[n]) if n in row.metrics else '' for n in summary.metrics]
            for row in summary.rows
        ],
    )
    failed = [row for row in summary.rows if row.error]
    if failed:
        lines += ['', '## Errors', '']
        lines += [f'- `{row.id}`: {row.error}' for row in failed]
    if plots:
        lines += ['', '## Plots', '']
        lines += [f'![{p.stem}]({p.relative_to(workdir).as_posix()})' for p in plots]
    return '\n'.join(lines) + '\n'


def _file_name(name: str) -> str:
    return re.sub(r'[^A-Za-z0-9.=+-]', '-', name)


def _write_plots(workdir: Path, summary: Summary, groups: list[Group]) -> list[Path]:
    """The ranking metric against each swept hyperparameter, and learning curves."""
    if not summary.finished:
        return []
    import matplotlib

    matplotlib.use('Agg')
    from matplotlib import pyplot as plt

    folder = workdir / 'plots'
    folder.mkdir(exist_ok=True)
    paths = []
    metric = summary.metric
    for key in summary.keys:
        swept = {json.dumps(g.setting.get(key)) for g in groups if metric in g.mean}
        if key == SEED_KEY or len(swept) < 2:
            continue
        figure, axes = plt.subplots(figsize=(5, 3.5))
        _plot_against(axes, key, metric, summary, groups)
        paths.append(_save(figure, folder / f'{_file_name(metric)}_vs_{_file_name(key)}.png'))
    curves = _curves(workdir, summary, metric)
    if curves:
        figure, all_axes = plt.subplots(
            1, len(curves), figsize=(5 * len(curves), 3.5), squeeze=False
        )
        for axes, (name, per_trial) in zip(all_axes[0], curves.items(), strict=True):
            for trial_id, (steps, values) in per_trial.items():
                axes.plot(steps, values, label=trial_id, linewidth=1, marker='.')
            axes.set(xlabel='step', ylabel=name, title=name)
            if len(per_trial) <= MAX_LEGEND:
                axes.legend(fontsize=6)
        paths.append(_save(figure, folder / f'curves_{_file_name(metric.rpartition("/")[2])}.png'))
    return paths


def _plot_against(axes, key: str, metric: str, summary: Summary, groups: list[Group]) -> None:
    """Each trial as a dot and, per setting of the other keys, the mean ± std over seeds."""
    values = [g.setting.get(key) for g in groups]
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    categories = list(dict.fromkeys(map(str, values)))

    def position(value):
        return value if numeric else categories.index(str(value))

    others: dict[str, list[Group]] = {}
    for group in groups:
        rest = {k: v for k, v in group.setting.items() if k != key}
        others.setdefault(json.dumps(rest, sort_keys=True), []).append(group)
    for label, members in others.items():
        members = sorted(
            (g for g in members if metric in g.mean), key=lambda g: position(g.setting.get(key))
        )
        xs = [position(g.setting.get(key)) for g in members]
        axes.errorbar(
            xs,
            [g.mean[metric] for g in members],
            yerr=[0.0 if math.isnan(g.std[metric]) else g.std[metric] for g in members],
            marker='o',
            capsize=3,
            label=None if label == '{}' else label,
        )
    for row in summary.finished:
        if metric in row.metrics and key in row.overrides:
            axes.plot(position(row.overrides[key]), row.metrics[metric], 'k.', alpha=0.3)
    if numeric and min(values) > 0 and max(values) >= 3 * min(values):
        axes.set_xscale('log')
        axes.minorticks_off()
    if not numeric:
        axes.set_xticks(range(len(categories)), categories)
    elif len(set(values)) <= MAX_TICKS:
        axes.set_xticks(sorted(set(values)), [f'{v:g}' for v in sorted(set(values))])
    axes.set(xlabel=key, ylabel=metric, title=f'{metric} vs {key} (mean ± std over seeds)')
    if len(others) > 1 and len(others) <= MAX_LEGEND:
        axes.legend(fontsize=6)


def _curves(workdir: Path, summary: Summary, metric: str) -> dict[str, dict[str, tuple]]:
    """Per logged name ('train/<m>', and `metric`), each trial's (steps, values)."""
    suffix = metric.rpartition('/')[2]
    names = [f'train/{suffix}', metric] if metric != f'train/{suffix}' else [metric]
    curves: dict[str, dict[str, tuple]] = {name: {} for name in names}
    for row in summary.rows:
        records = logs.read_metrics(workdir / TRIALS_DIR / row.id)
        for name in names:
            points = [(r['step'], r[name]) for r in records if name in r]
            if points:
                curves[name][row.id] = tuple(zip(*points, strict=True))
    return {name: per_trial for name, per_trial in curves.items() if per_trial}


def _save(figure, path: Path) -> Path:
    from matplotlib import pyplot as plt

    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description='Writes summary.csv, summary.md and plots/.')
    parser.add_argument('workdir', help='a sweep folder (with sweep.json)')
    for path in write_report(parser.parse_args(argv).workdir):
        print(path)


if __name__ == '__main__':
    main()
