"""export(config, workdir): a trained run's images as files other tools read.

`--mode export` writes `export.num_images` generated images of the newest (or, with
`export.checkpoint='best'`, the kept best) checkpoint as uint8 in the dataset's shape: the
same images evaluation scores (`registry.generate_chunks`: same keys, same quantisation, the
EMA generator where the model keeps one), class-balanced for conditional models unless
`export.label` names a class. Models with an encoder also write (original, reconstruction)
pairs of the first eval images, image-transformation models (input, target, output) triples.
As `.npz` (arrays 'images', 'labels', 'originals', 'reconstructions', 'inputs', 'targets',
'outputs') or as folders of PNG files (`images/000000.png`, ...) that pytorch-fid,
torch-fidelity, clean-fid and StudioGAN's evaluator read; `export.json` beside them records
the seed, step, checkpoint and what each file holds.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jax
import ml_collections
import numpy as np
import tqdm

from experiments import best_checkpoint, logs, runtime
from experiments import workdir as workdir_lock
from gen_models import data, images
from gen_models.config import ConfigError
from gen_models.metrics import registry
from gen_models.models import base


def _generated(run: runtime.Run, state: Any, num: int) -> dict[str, np.ndarray]:
    config = run.config
    size = config.train.eval_batch_size
    count = -(-num // size) * size
    label = config.export.label
    labels = (
        np.full(count, label, np.int32)
        if run.model.num_classes and label >= 0
        else registry.balanced_labels(run.model.num_classes, count)
    )
    chunks = registry.generate_chunks(run.model, state, run.keys['sample'], num, size, labels)
    generated = np.concatenate(list(_progress(chunks, num, size, 'generating')))
    arrays = {'images': images.to_uint8(generated, run.model.image_range)}
    if labels is not None:
        arrays['labels'] = labels[:num]
    return arrays


def _eval_batches(run: runtime.Run, num: int) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    """(offset, batch) of the first `num` eval examples, padding dropped."""
    size = run.config.train.eval_batch_size
    batches = data.make_eval_iterator(run.config.dataset, batch_size=size, num_examples=num)
    for index, batch in enumerate(_progress(batches, num, size, 'eval images')):
        real = batch['mask'] > 0
        yield index * size, {k: v[real] for k, v in batch.items()}


def _of_eval_images(run: runtime.Run, state: Any, num: int) -> dict[str, np.ndarray]:
    """(original, reconstruction) and (input, target, output) arrays of the eval images."""
    model, low_high = run.model, run.model.image_range
    out: dict[str, list[np.ndarray]] = {}
    reconstruct = jax.jit(model.reconstruct) if model.reconstruct else None
    transform = jax.jit(model.transform) if model.transform and model.pairs else None
    pairs = jax.jit(model.pairs) if transform else None
    for offset, batch in _eval_batches(run, num):
        if reconstruct is not None:
            labels = (batch['label'],) if model.num_classes else ()
            recon = reconstruct(state, batch['image'], run.keys['sample'], *labels)
            out.setdefault('originals', []).append(batch['image'])
            out.setdefault('reconstructions', []).append(images.to_uint8(recon, low_high))
        if transform is not None:
            keys = base.index_keys(run.keys['sample'], len(batch['image']), offset)
            source, target = pairs(batch['image'], keys)
            output = transform(state, source, run.keys['sample'])
            for name, value in (('inputs', source), ('targets', target), ('outputs', output)):
                out.setdefault(name, []).append(images.to_uint8(value, (0.0, 1.0)))
    return {name: np.concatenate(parts) for name, parts in out.items()}


def _progress(iterable, num: int, size: int, what: str):
    return tqdm.tqdm(iterable, total=-(-num // size), desc=what, unit='batch', leave=False)


def _write(arrays: dict[str, np.ndarray], folder: Path, file_format: str) -> list[str]:
    """The arrays as `arrays.npz`, or image arrays as PNG folders (labels as labels.txt)."""
    folder.mkdir(parents=True, exist_ok=True)
    if file_format == 'npz':
        path = folder / 'arrays.npz'
        tmp = folder / '.arrays.npz.tmp'
        with open(tmp, 'wb') as file:
            np.savez(file, **arrays)
        tmp.replace(path)
        return [path.name]
    written = []
    for name, values in arrays.items():
        if name == 'labels':
            (folder / 'labels.txt').write_text(''.join(f'{v}\n' for v in values))
            written.append('labels.txt')
            continue
        for index, image in enumerate(values):
            images.save_png(folder / name / f'{index:06d}.png', image)
        written.append(f'{name}/')
    return written


def export(config: ml_collections.ConfigDict, workdir: str | Path) -> dict[str, Any]:
    """Writes the run's images (module docstring); returns export.json's record."""
    workdir = Path(workdir)
    run = runtime.prepare(config)
    settings = run.config.export
    best = settings.checkpoint == 'best'
    runtime.check_trained(workdir, best_checkpoint.DIRECTORY if best else 'checkpoints')
    with workdir_lock.lock(workdir):
        state, step = (
            best_checkpoint.restore(run, workdir) if best else runtime.restore_latest(run, workdir)
        )
        arrays = _generated(run, state, settings.num_images) if run.model.generate else {}
        if run.model.reconstruct or run.model.transform:
            arrays.update(_of_eval_images(run, state, min(settings.num_images, run.info.num_eval)))
        if not arrays:
            raise ConfigError(
                'model.name', run.config.model.name, 'a model that generates or reconstructs images'
            )
        folder = Path(settings.dir) if settings.dir else workdir / 'export' / f'{step:07d}'
        record = {
            'step': step,
            'checkpoint': best_checkpoint.read_record(workdir) if best else 'latest',
            'seed': run.config.seed,
            'model': run.config.model.name,
            'dataset': run.config.dataset.name,
            'eval_split': run.config.dataset.eval_split,
            'arrays': {name: list(values.shape) for name, values in arrays.items()},
            'files': _write(arrays, folder, settings.format) if jax.process_index() == 0 else [],
            'folder': str(folder),
        }
        if jax.process_index() == 0:
            logs.write_json(folder / 'export.json', record)
        return record
