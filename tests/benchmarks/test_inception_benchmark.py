"""The FID Inception benchmark on a couple of images: the PyTorch twin is a second, independent
implementation of the features (the original network's reference features, the Flax port's on
random images), and the benchmark's rows, table and JSON. Nothing here depends on how fast
anything runs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks import inception_benchmark
from experiments import logs
from gen_models.nets import inception

torch = pytest.importorskip('torch', reason='the PyTorch twin needs torch (.[bench])')
torch_inception = pytest.importorskip('benchmarks.torch_inception')


@pytest.fixture(scope='module')
def weights_path():
    path = inception.inception_path()
    if not path.is_file():
        pytest.skip(f'FID Inception weights missing at {path}')
    return path


@pytest.fixture(scope='module')
def twin(weights_path):
    return torch_inception.TorchInception(weights_path)


def test_twin_reproduces_reference_pool3_features(twin, weights_path):
    inputs = np.load(weights_path.parent / 'ref_input.npy')  # NCHW, already in [-1, 1]
    reference = np.load(weights_path.parent / 'ref_torch_feats.npy')
    with torch.inference_mode():
        features = twin.net(
            torch.from_numpy(inputs).contiguous(memory_format=torch.channels_last)
        ).numpy()
    assert features.shape == (2, inception.FEATURE_DIM)
    np.testing.assert_array_less(np.abs(features - reference).max(), 1e-5)


@pytest.mark.parametrize('shape', [(2, 32, 32, 3), (2, 28, 28, 1)])
def test_twin_agrees_with_the_port_on_random_uint8_images(twin, weights_path, shape):
    """Grey images are repeated to three channels by both; the resized inputs agree to float32
    rounding (the matmuls' summation order differs between CPUs: 2.4e-7 seen)."""
    images = inception_benchmark.random_images(shape[0], shape[1], shape[3], seed=1)
    np.testing.assert_allclose(
        torch_inception.preprocess(torch.from_numpy(images)).permute(0, 2, 3, 1).numpy(),
        np.asarray(inception.preprocess(images)),
        rtol=0,
        atol=1e-6,
    )
    port = np.asarray(inception.feature_fn()(inception.load_params(weights_path), images))
    assert port.shape == (2, inception.FEATURE_DIM) and np.abs(port).max() > 1
    np.testing.assert_array_less(np.abs(twin(images).numpy() - port).max(), 1e-5)


def test_time_rows_rotates_the_rows_and_reverses_every_other_repeat():
    calls = []
    rows = {
        name: inception_benchmark.Row(lambda x, name=name: calls.append(name) or x)
        for name in ('a', 'b', 'c')
    }
    seconds = inception_benchmark.time_rows(rows, np.zeros(1), steps=2, repeats=3, warmup=1)
    assert calls == list('abc') + list('aabbcc') + list('ccbbaa') + list('aabbcc')
    assert {name: len(blocks) for name, blocks in seconds.items()} == {'a': 3, 'b': 3, 'c': 3}


def test_torchvision_rows_give_pool_features_at_each_thread_count():
    pytest.importorskip('torchvision', reason="torchvision's inception_v3 needs torchvision")
    rows = inception_benchmark.torchvision_rows([1, 2])
    assert list(rows) == [
        'torchvision inception_v3 (1 thread)',
        'torchvision inception_v3 (2 threads)',
    ]
    images = inception_benchmark.random_images(2, 28, 1)
    for row in rows.values():
        row.prepare()
        assert torch.get_num_threads() in (1, 2) and not row.same_network
        features = row.features(images)
        assert features.shape == (2, inception.FEATURE_DIM) and np.isfinite(features).all()
    rows['torchvision inception_v3 (1 thread)'].prepare()
    assert torch.get_num_threads() == 1
    table = inception_benchmark.markdown_table(
        [
            {
                'framework': 'tv',
                'images_per_second': 1.0,
                'batch_ms': 2e3,
                'fid_50k_minutes': 1.0,
                'max_abs_diff_vs_jax': None,
            }
        ]
    )
    assert table.splitlines()[2].endswith('| other weights |')


def test_rows_table_and_json(weights_path, tmp_path):
    with pytest.raises(ValueError, match='unknown --jax_variants'):
        inception_benchmark.jax_rows({}, np.zeros((1, 8, 8, 3), np.uint8), ['xnnpack'])
    result = inception_benchmark.run_benchmark(
        batch_size=2, image_size=32, repeats=1, warmup=0, torch_threads=['1']
    )
    rows = result['rows']
    assert [r['framework'] for r in rows] == ['jax', 'torch (1 thread)']
    jax_row, torch_row = rows
    assert jax_row['lower_seconds'] > 0 and jax_row['compile_seconds'] > 0
    assert jax_row['vs_torch_of'] == 'torch (1 thread)'
    assert jax_row['vs_torch'] == pytest.approx(
        torch_row['block_seconds'][0] / jax_row['block_seconds'][0]
    )
    for row in rows:
        assert row['images_per_second'] == pytest.approx(2 / row['block_seconds'][0])
        assert row['fid_50k_minutes'] == pytest.approx(1e5 / row['images_per_second'] / 60)
        assert row['max_abs_diff_vs_jax'] < 1e-5
    assert result['settings']['image_shape'] == [32, 32, 3]
    table = inception_benchmark.markdown_table(rows).splitlines()
    assert len(table) == 2 + len(rows) and table[2].startswith('| jax | ')
    logs.write_json(tmp_path / 'inception.json', result)
    saved = json.loads((tmp_path / 'inception.json').read_text())
    assert saved['machine']['cpu_count'] > 0 and len(saved['rows']) == 2
