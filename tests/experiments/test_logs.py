"""MetricWriter, read_metrics and write_json: files a run leaves and how a resume rewinds them."""

from __future__ import annotations

import io
import json
import math
import re
import struct
import sys
import time
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image
from tensorboardX.proto import event_pb2
from tensorboardX.record_writer import masked_crc32c

from experiments.environment import collect_environment
from experiments.logs import MetricWriter, read_metrics, write_json


def read_events(workdir: Path) -> list[event_pb2.Event]:
    """All events of the workdir's TensorBoard files, in the order TensorBoard reads them."""
    events = []
    for path in sorted(workdir.glob('events.out.tfevents.*')):
        data, offset = path.read_bytes(), 0
        while offset < len(data):  # TFRecord: length, crc(length), payload, crc(payload).
            header = data[offset : offset + 8]
            (length,) = struct.unpack('<Q', header)
            assert struct.unpack('<I', data[offset + 8 : offset + 12])[0] == masked_crc32c(header)
            payload = data[offset + 12 : offset + 12 + length]
            assert struct.unpack('<I', data[offset + 12 + length : offset + 16 + length])[0] == (
                masked_crc32c(payload)
            )
            events.append(event_pb2.Event.FromString(payload))
            offset += 16 + length
    return events


def tensorboard_scalars(workdir: Path) -> dict[str, list[tuple[int, float]]]:
    """Scalars as TensorBoard shows them: a SessionLog.START at step s purges steps >= s."""
    scalars: dict[str, list[tuple[int, float]]] = {}
    for event in read_events(workdir):
        if event.session_log.status == event_pb2.SessionLog.START:
            scalars = {
                tag: [(s, v) for s, v in points if s < event.step]
                for tag, points in scalars.items()
            }
        for value in event.summary.value:
            if value.HasField('simple_value'):
                scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
    return scalars


def test_metrics_jsonl_records(tmp_path):
    before = time.time()
    with MetricWriter(tmp_path) as writer:
        writer.write_scalars(
            1, {'loss': np.float32(0.5), 'accuracy': jnp.array(0.25)}, prefix='train'
        )
        writer.write_scalars(
            2, {'fid': math.nan, 'up': math.inf, 'down': -math.inf, 'n': 3}, prefix='eval'
        )
        writer.write_scalars(3, {'lr': 1e-3})
    lines = (tmp_path / 'metrics.jsonl').read_text().splitlines()
    # Strict JSON: no NaN/Infinity tokens.
    raw = [json.loads(line, parse_constant=lambda token: pytest.fail(token)) for line in lines]
    assert [sorted(record) for record in raw] == [
        ['step', 'time', 'train/accuracy', 'train/loss'],
        ['eval/down', 'eval/fid', 'eval/n', 'eval/up', 'step', 'time'],
        ['lr', 'step', 'time'],
    ]
    assert raw[0]['train/loss'] == 0.5 and raw[0]['train/accuracy'] == 0.25
    assert (raw[1]['eval/fid'], raw[1]['eval/up'], raw[1]['eval/down']) == ('nan', 'inf', '-inf')
    assert raw[1]['eval/n'] == 3.0 and isinstance(raw[1]['eval/n'], float)
    assert all(before <= record['time'] <= time.time() for record in raw)

    records = read_metrics(tmp_path)
    assert [record['step'] for record in records] == [1, 2, 3]
    assert math.isnan(records[1]['eval/fid'])
    assert (records[1]['eval/up'], records[1]['eval/down']) == (math.inf, -math.inf)


def test_reserved_names_are_refused(tmp_path):
    with MetricWriter(tmp_path) as writer, pytest.raises(ValueError):
        writer.write_scalars(1, {'step': 1.0})


def test_tensorboard_scalars_and_images(tmp_path):
    image = np.random.default_rng(0).integers(0, 256, (6, 10, 3), dtype=np.uint8)
    gray = np.random.default_rng(1).integers(0, 256, (6, 10, 1), dtype=np.uint8)
    with MetricWriter(tmp_path) as writer:
        writer.write_scalars(5, {'loss': 1.5, 'bad': math.nan}, prefix='train')
        writer.write_images(5, {'samples': image, 'gray': gray})
    assert len(list(tmp_path.glob('events.out.tfevents.*'))) == 1
    scalars = tensorboard_scalars(tmp_path)
    assert scalars['train/loss'] == [(5, 1.5)]
    assert math.isnan(scalars['train/bad'][0][1])

    images = {
        value.tag: (event.step, value.image)
        for event in read_events(tmp_path)
        for value in event.summary.value
        if value.HasField('image')
    }
    for name, expected in [('samples', image), ('gray', np.repeat(gray, 3, axis=-1))]:
        step, summary = images[name]
        assert step == 5 and (summary.height, summary.width) == (6, 10)
        decoded = np.asarray(Image.open(io.BytesIO(summary.encoded_image_string)))
        np.testing.assert_array_equal(decoded, expected)


def test_resume_rewinds_metrics_and_tensorboard(tmp_path):
    # A run logs up to step 150, is killed mid-write, and resumes from its checkpoint at 100.
    with MetricWriter(tmp_path) as writer:
        for step in range(10, 160, 10):
            writer.write_scalars(step, {'loss': float(step)}, prefix='train')
    with (tmp_path / 'metrics.jsonl').open('a') as file:
        file.write('{"step": 160, "train/lo')

    with MetricWriter(tmp_path, resume_step=100) as writer:
        assert [r['step'] for r in read_metrics(tmp_path)] == list(range(10, 110, 10))
        for step in range(110, 210, 10):
            writer.write_scalars(step, {'loss': -float(step)}, prefix='train')

    records = read_metrics(tmp_path)
    assert [r['step'] for r in records] == list(range(10, 210, 10))
    assert [r['train/loss'] for r in records] == (
        [float(s) for s in range(10, 110, 10)] + [-float(s) for s in range(110, 210, 10)]
    )
    assert not list(tmp_path.glob('.metrics.jsonl*'))  # No temporary left.

    assert len(list(tmp_path.glob('events.out.tfevents.*'))) == 2
    assert tensorboard_scalars(tmp_path)['train/loss'] == [
        (r['step'], r['train/loss']) for r in records
    ]


def test_append_without_resume_keeps_records(tmp_path):
    with MetricWriter(tmp_path) as writer:
        writer.write_scalars(1, {'a': 1.0})
    with MetricWriter(tmp_path) as writer:
        writer.write_scalars(2, {'a': 2.0})
    assert [r['a'] for r in read_metrics(tmp_path)] == [1.0, 2.0]


def test_disabled_writer_writes_nothing(tmp_path):
    workdir = tmp_path / 'run'
    with MetricWriter(workdir, resume_step=3, enabled=False) as writer:
        writer.write_scalars(1, {'a': 1.0})
        writer.write_images(1, {'x': np.zeros((2, 2, 3), np.uint8)})
        writer.flush()
    assert not workdir.exists()
    assert read_metrics(workdir) == []


def test_write_json_round_trip(tmp_path):
    obj = {
        'model': {'name': 'gan', 'sizes': (64, 128)},
        'fid': np.float32(12.5),
        'counts': np.arange(3),
        'step': jnp.int32(7),
    }
    path = tmp_path / 'results.json'
    path.write_text('old')
    write_json(path, obj)
    assert json.loads(path.read_text()) == {
        'model': {'name': 'gan', 'sizes': [64, 128]},
        'fid': 12.5,
        'counts': [0, 1, 2],
        'step': 7,
    }
    assert [p.name for p in tmp_path.iterdir()] == ['results.json']
    with pytest.raises(TypeError):
        write_json(tmp_path / 'bad.json', {'x': object()})


def test_environment_is_complete_and_serialisable(tmp_path):
    environment = collect_environment()
    assert {
        'python',
        'platform',
        'hostname',
        'packages',
        'jax_backend',
        'device_count',
        'local_device_count',
        'device_kinds',
        'process_index',
        'process_count',
        'git',
        'argv',
        'timestamp_utc',
    } <= environment.keys()
    assert environment['packages']['jax'] and environment['packages']['orbax-checkpoint']
    assert set(environment['packages']) >= {
        'jaxlib',
        'flax',
        'optax',
        'grain',
        'numpy',
        'tensorflow-datasets',
        'ml-collections',
    }
    assert environment['device_count'] >= 1 and environment['process_count'] >= 1
    assert environment['argv'] == sys.argv
    git = environment['git']  # None when the code is not run from a git checkout.
    assert git is None or (
        re.fullmatch('[0-9a-f]{40}', git['commit']) and isinstance(git['dirty'], bool)
    )
    write_json(tmp_path / 'environment.json', environment)
    assert json.loads((tmp_path / 'environment.json').read_text()) == environment


def test_environment_without_git(monkeypatch):
    monkeypatch.setenv('PATH', '')  # No git executable to be found.
    assert collect_environment()['git'] is None
