"""Reproductions: the runner, the redrawn figure and the README table generated from disk."""

from __future__ import annotations

import dataclasses
import json
import math

import jax.numpy as jnp
import pytest

from configs import burda_iwae
from experiments import logs
from gen_models import optim
from reproductions import reproduce


def _write_results(workdir, metrics, protocols, step=100):
    workdir.mkdir(parents=True)
    logs.write_json(
        workdir / 'results.json',
        {'step': step, 'metrics': metrics, 'metric_protocols': protocols},
    )
    logs.write_json(
        workdir / reproduce.RECORD_FILE, {'invocations': [{'started': 0.0, 'seconds': 3720.0}]}
    )
    logs.write_json(
        workdir / 'environment.json',
        {'device_count': 1, 'device_kinds': ['cpu'], 'cpu': {'model': 'AMD EPYC', 'cores': 2}},
    )


def test_table_reads_results_from_disk_and_marks_missing_runs(tmp_path):
    protocol = {
        'importance_samples': 5000,
        'num_examples': 10000,
        'dataset': 'mnist',
        'split': 'test',
        'binarization': 'dynamic (fixed eval key)',
    }
    _write_results(
        tmp_path / 'burda_vae',
        {'eval/iwae': -87.123, 'eval/elbo': -91.5},
        {'iwae': protocol},
    )
    text = reproduce.table(tmp_path)
    rows = {line.split(' | ')[1]: line for line in text.splitlines() if line.startswith('| ')}
    vae = rows['VAE (k=1), test NLL']
    assert '| 86.76 | 87.12 | +0.36 |' in vae and 'k=5000 IWAE bound' in vae
    assert 'ELBO -91.50' in vae
    assert '1 h 02 min' in vae and '1 x cpu (AMD EPYC, 2 cores)' in vae
    assert '| not run |' in rows['IWAE (k=5), test NLL']
    assert 'python -m reproductions.reproduce run burda_vae' in text


def test_parzen_row_states_the_real_data_reference_when_results_hold_it(tmp_path):
    protocol = {
        'num_samples': 10000,
        'sigma': 0.1668,
        'validation_split': 'train[50000:]',
        'num_examples': 10000,
    }
    metrics = {'eval/parzen': 230.04, 'eval/parzen_stderr': 2.1}
    _write_results(tmp_path / 'goodfellow_parzen', metrics, {'parzen': protocol})
    reference = {**protocol, 'num_samples': 5000, 'centres_split': 'train[:5000]'}
    _write_results(
        tmp_path / 'goodfellow_parzen_dcgan',
        {**metrics, 'eval/parzen_reference': 241.26},
        {'parzen': protocol, 'parzen_reference': reference},
    )
    rows = [line for line in reproduce.table(tmp_path).splitlines() if 'Parzen' in line]
    maxout, dcgan = rows
    assert '| 225 ± 2 | 230.0 ± 2.1 | +5.00 |' in maxout and 'sigma 0.167' in maxout
    assert 'real images' not in maxout
    assert '5000 real images of train[:5000] in place of the samples score 241.3' in dcgan


def test_fid_row_states_sample_counts_and_kid_spread(tmp_path):
    protocol = {
        'num_samples': 1000,
        'reference_examples': 1000,
        'reference_split': 'train',
        'feature_net': 'inception-2015-12-05/pool3',
    }
    metrics = {'eval/fid': 128.333, 'eval/kid': 0.09151, 'eval/kid_std': 0.0}
    _write_results(tmp_path / 'dcgan_cifar10', metrics, {'fid': protocol, 'kid': protocol})
    (row,) = [line for line in reproduce.table(tmp_path).splitlines() if 'FID on' in line]
    assert '| 128.33 (KID 0.0915) | +80.04 |' in row  # One subset: no spread shown.
    assert '1000 samples vs 1000 train images, inception-2015-12-05/pool3; 100 steps' in row


def test_table_marks_a_run_stopped_before_its_results_as_in_progress(tmp_path):
    workdir = tmp_path / 'burda_vae_paper'
    workdir.mkdir()
    logs.write_json(workdir / 'config.json', {'train': {'num_steps': 9_840_000}})
    (workdir / logs.METRICS_FILE).write_text(
        ''.join(json.dumps({'step': step, 'train/loss': 1.0}) + '\n' for step in (1000, 2000))
    )
    text = reproduce.table(tmp_path)
    row = next(line for line in text.splitlines() if 'all 8 stages' in line)
    assert '| in progress |' in row and '2,000 of 9,840,000 steps logged so far' in row


def test_wall_time_counts_a_killed_invocation_until_its_last_logged_metric(tmp_path):
    logs.write_json(
        tmp_path / reproduce.RECORD_FILE,
        {'invocations': [{'started': 1000.0, 'seconds': 600.0}, {'started': 5000.0}]},
    )
    (tmp_path / logs.METRICS_FILE).write_text(
        ''.join(
            json.dumps({'step': step, 'time': logged_at, 'train/loss': 1.0}) + '\n'
            for step, logged_at in enumerate([1500.0, 5100.0, 5900.0])
        )
    )
    assert reproduce.wall_seconds(tmp_path) == 600.0 + 900.0
    assert math.isnan(reproduce.wall_seconds(tmp_path / 'never_run'))


def test_readme_section_is_replaced_between_markers(tmp_path):
    readme = tmp_path / 'README.md'
    readme.write_text(f'# x\n{reproduce.README_BEGIN}\nold\n{reproduce.README_END}\ntail\n')
    for _ in range(2):  # idempotent
        reproduce.update_readme(readme, 'new table')
    assert readme.read_text() == (
        f'# x\n{reproduce.README_BEGIN}\nnew table\n{reproduce.README_END}\ntail\n'
    )
    readme.write_text('no markers')
    with pytest.raises(ValueError, match='markers'):
        reproduce.update_readme(readme, 'x')


def _tiny_flags(shared_data, data_dir):
    return [
        f'--config.dataset.data_dir={data_dir}',
        f'--config.dataset.source_dir={shared_data}',
        '--config.train.num_steps=20',
        '--config.train.log_every=5',
        '--config.train.eval_every=10',
        '--config.train.checkpoint_every=20',
        '--config.train.sample_every=20',
        '--config.train.progress_bar=False',
    ]


def test_sweep_reproduction_runs_redraws_figure_and_tabulates(shared_data, data_dir, tmp_path):
    root = tmp_path / 'runs'
    tiny = _tiny_flags(shared_data, data_dir)
    workdir = reproduce.run(reproduce.REPRODUCTIONS['kingma_welling_frey'], root, tiny)
    assert reproduce.figure_path(workdir).stat().st_size > 0
    record = json.loads((workdir / reproduce.RECORD_FILE).read_text())
    assert record['invocations'][0]['seconds'] > 0
    assert record['invocations'][0]['overrides'] == tiny
    rows = reproduce.REPRODUCTIONS['kingma_welling_frey'].rows(workdir)
    assert [row.target.rsplit('=', 1)[1] for row in rows] == ['3', '5', '10', '20']
    for row in rows:
        train_value, test_value = (float(part.split()[1]) for part in row.ours.split(', '))
        assert train_value < 2000 and test_value < 2000  # finite bounds, nats per image
        assert 'after 20 steps' in row.protocol


def test_archived_sweep_reproduction_resumes_from_its_archive(shared_data, data_dir, tmp_path):
    archived = dataclasses.replace(
        reproduce.REPRODUCTIONS['kingma_welling_frey'], archive='kept', figure=None
    )
    tiny = _tiny_flags(shared_data, data_dir)
    reproduce.run(archived, tmp_path / 'first', tiny, archive_root=tmp_path)
    kept = tmp_path / 'kept'
    results = {p.relative_to(kept): p.read_text() for p in kept.glob('trials/*/results.json')}
    assert len(results) == 4 and not any(kept.glob('trials/*/checkpoints'))
    assert reproduce.source(archived, tmp_path / 'second', tmp_path) == kept  # nothing run there

    second = reproduce.run(archived, tmp_path / 'second', tiny, archive_root=tmp_path)
    assert not any(second.glob('trials/*/checkpoints'))  # every trial restored, none trained
    assert {p.relative_to(second): p.read_text() for p in second.glob('trials/*/results.json')} == (
        results
    )
    assert len(json.loads((kept / reproduce.RECORD_FILE).read_text())['invocations']) == 2
    assert reproduce.source(archived, tmp_path / 'second', tmp_path) == second


def test_burda_schedule_is_three_to_the_i_passes_at_decaying_rates():
    config = burda_iwae.get_config('iwae5_paper')
    assert config.model.num_importance_samples == 5
    multiplier = optim.lr_multiplier(config.optim, config.train.num_steps)
    steps_per_pass = 60_000 // config.train.batch_size
    step = 0
    for stage in range(8):  # Stage i: 3^i passes at 1e-3 * 10^(-i / 7).
        expected = 1e-3 * 10 ** (-stage / 7)
        for at in (step, step + 3**stage * steps_per_pass - 1):
            assert config.lr * float(multiplier(jnp.int32(at))) == pytest.approx(expected, 1e-5)
        step += 3**stage * steps_per_pass
    assert step == config.train.num_steps == 3280 * steps_per_pass


def test_a_config_error_exits_with_launchs_status_and_no_resume_hint(tmp_path, capfd):
    with pytest.raises(SystemExit) as error:
        reproduce.main(['run', '--root', str(tmp_path), 'burda_vae', '--config.lr=-1'])
    assert error.value.code == 2  # launch.py's status for a config error
    message = capfd.readouterr().err
    assert 'config.lr=-1' in message  # launch.py's own line names the key
    assert 'burda_vae: launch.py exited with status 2; fix the flag or config value' in message
    assert 'resumes' not in message
