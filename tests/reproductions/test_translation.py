"""The translation table: its entries are valid configs; a run lands in it from disk."""

from __future__ import annotations

import importlib
import json

import pytest

from gen_models import schema
from reproductions import reproduce, translation


@pytest.mark.parametrize('entry', translation.entries(), ids=lambda e: e.name)
def test_every_entry_is_a_valid_config_of_its_task(entry):
    path, _, variant = entry.config.partition(':')
    module = importlib.import_module(path.removesuffix('.py').replace('/', '.'))
    config = module.get_config(variant or None)
    schema.validate(config)
    assert config.model.name == entry.method.partition('_')[0].replace('unet', 'pix2pix')


def test_methods_of_a_task_share_its_data_and_budget():
    for task in translation.TASKS:
        configs = []
        for entry in (e for e in translation.entries() if e.task == task):
            path, _, variant = entry.config.partition(':')
            module = importlib.import_module(path.removesuffix('.py').replace('/', '.'))
            configs.append(module.get_config(variant or None))
        shared = {
            (json.dumps(c.dataset.to_dict()), json.dumps(c.transform.to_dict()))
            + (c.train.batch_size, c.train.num_steps, c.train.eval_examples)
            for c in configs
        }
        assert len(shared) == 1, task


def test_a_finished_run_fills_its_row_and_copies_its_grid(shared_data, data_dir, tmp_path):
    root, doc = tmp_path / 'runs', tmp_path / 'docs' / 'translation.md'
    doc.parent.mkdir()
    doc.write_text(f'# t\n{translation.MARKERS[0]}\n{translation.MARKERS[1]}\n')
    tiny = [
        f'--config.dataset.data_dir={data_dir}',
        f'--config.dataset.source_dir={shared_data}',
        '--config.model.width=4',
        '--config.train.num_steps=4',
        '--config.train.log_every=2',
        '--config.train.eval_every=4',
        '--config.train.checkpoint_every=4',
        '--config.train.sample_every=4',
        '--config.train.eval_examples=20',
        '--config.train.eval_batch_size=20',
        '--config.train.num_samples=6',
        '--config.train.progress_bar=False',
    ]
    translation.main(
        ['run', '--root', str(root), '--doc', str(doc), '--only', 'rotate45/unet_l1', *tiny]
    )
    metrics = json.loads((root / 'rotate45' / 'unet_l1' / 'results.json').read_text())['metrics']
    lines = doc.read_text().splitlines()
    row = next(line for line in lines if '| U-Net, L1 only |' in line and 'rotation' in line)
    cells = [cell.strip() for cell in row.split('|')[1:-1]]
    assert cells[2:4] == [f'{metrics["eval/psnr"]:.2f}', f'{metrics["eval/ssim"]:.3f}']
    assert cells[6] == '4' and cells[7].endswith('min')  # steps; wall time from the record
    assert cells[8] == '[grid](translation/rotate45__unet_l1.png)'
    assert (doc.parent / 'translation' / 'rotate45__unet_l1.png').stat().st_size > 0
    nothing = next(line for line in lines if 'rotation' in line and 'the input itself' in line)
    assert f'| {metrics["eval/identity_psnr"]:.2f} |' in nothing
    assert '| pix2pix | not run |' in doc.read_text()
    assert '- MNIST 32 px, rotation by 45 degrees (bilinear): U-Net, L1 only' in lines
    assert reproduce.wall_seconds(root / 'rotate45' / 'unet_l1') > 0

    # The run's files were kept beside the document: a fresh root (another machine) gets the
    # same row from them, grid included, and `run` does not train it again.
    kept = doc.parent / 'translation' / 'runs' / 'rotate45' / 'unet_l1'
    assert sorted(p.name for p in kept.iterdir()) == sorted(translation.KEPT_FILES)
    elsewhere = tmp_path / 'elsewhere'
    translation.main(
        ['run', '--root', str(elsewhere), '--doc', str(doc), '--only', 'rotate45/unet_l1', *tiny]
    )
    assert not elsewhere.exists()
    assert doc.read_text().splitlines() == lines
