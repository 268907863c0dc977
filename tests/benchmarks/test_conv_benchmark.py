"""The per-layer conv benchmark on a tiny DCGAN: the convolutions it finds in the train step
against the nets' parameters, torch computing the same ops as JAX, and its rows, table and
JSON. Nothing here depends on how fast anything runs."""

import dataclasses
import json

import flax.linen as nn
import jax
import numpy as np
import pytest

from benchmarks import conv_benchmark
from benchmarks.conv_benchmark import OPS, Settings
from experiments import logs, runtime
from tests.benchmarks.test_benchmark import tiny

BATCH = 4


@pytest.fixture(scope='module')
def dcgan(data_dir):
    config = tiny('dcgan_mnist', data_dir)
    config.train.batch_size = BATCH
    return config


@pytest.fixture(scope='module')
def layers(dcgan):
    found, skipped = conv_benchmark.train_step_layers(dcgan)
    assert skipped == []
    return found


def _kernels(config) -> dict[str, dict[str, tuple[int, ...]]]:
    """4-D kernel shapes by network and module, from the initialised parameters."""
    run = runtime.prepare(config)
    example = {'image': np.zeros((1, *run.info.image_shape), np.uint8)}
    params = jax.eval_shape(run.model.init, run.keys['init'], example).params
    return {
        net: {
            module: tuple(leaves['kernel'].shape)
            for module, leaves in params[net].items()
            if 'kernel' in leaves and leaves['kernel'].ndim == 4
        }
        for net in ('generator', 'discriminator')
    }


def test_finds_every_conv_of_g_and_d_with_the_gradients_the_step_takes(dcgan, layers):
    """G's transposed convs double the sides from 16 / 2**stages; D's convs halve them and run
    twice: on real + generated images (2x batch) in D's update, which needs no gradient of
    the images, and on generated images in G's update, which needs no kernel gradients."""
    kernels = _kernels(dcgan)
    side = dcgan.dataset.shapes_resolution
    stages = len(kernels['generator'])
    assert stages == len(kernels['discriminator']) == 2
    expected = set()
    for i, (module, kernel) in enumerate(sorted(kernels['generator'].items())):
        lhs_side = side // 2 ** (stages - i)
        expected.add(
            (
                f'UpConvStack/{module}',
                (BATCH, lhs_side, lhs_side, kernel[2]),
                kernel,
                (BATCH, 2 * lhs_side, 2 * lhs_side, kernel[3]),
                OPS,
            )
        )
    for i, (module, kernel) in enumerate(sorted(kernels['discriminator'].items())):
        lhs_side = side // 2**i
        for batch, ops in (
            (2 * BATCH, ('forward', 'kernel grad') if i == 0 else OPS),
            (BATCH, ('forward', 'input grad')),
        ):
            expected.add(
                (
                    f'DownConvStack/{module}',
                    (batch, lhs_side, lhs_side, kernel[2]),
                    kernel,
                    (batch, lhs_side // 2, lhs_side // 2, kernel[3]),
                    ops,
                )
            )
    found = [(x.module, x.lhs_shape, x.kernel_shape, x.out_shape, x.ops) for x in layers]
    assert len(found) == len(expected) == 6
    assert set(found) == expected
    for layer in layers:
        assert layer.transposed == layer.custom_vjp == layer.module.startswith('UpConvStack')
        assert (layer.lhs_dilation if layer.transposed else layer.strides) == (2, 2)


def test_layers_compute_the_nets_flax_layers(layers):
    """Each layer's forward op is the flax layer the nets declare (stride 2, 'SAME')."""
    for layer in layers:
        x, w, g = conv_benchmark.random_operands(layer)
        flax_layer = (nn.ConvTranspose if layer.transposed else nn.Conv)(
            layer.kernel_shape[-1], layer.kernel_shape[:2], (2, 2), 'SAME', use_bias=False
        )
        expected = flax_layer.apply({'params': {'kernel': w}}, x)
        actual = conv_benchmark.jax_op(layer, 'forward')(x, w, g)
        np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5)


def test_torch_computes_every_op_as_jax_does(layers):
    pytest.importorskip('torch')
    for layer in layers:
        operands = conv_benchmark.random_operands(layer)
        for op in layer.ops:
            conv_benchmark.check_torch_matches(layer, op, operands)
    asymmetric = dataclasses.replace(layers[2], padding=((0, 1), (0, 1)))
    assert 'asymmetric padding' in conv_benchmark.torch_conv_args(asymmetric)


def test_torch_variants_per_thread_count_and_memory_format(layers):
    pytest.importorskip('torch')
    layer = layers[-1]
    rows = conv_benchmark.benchmark_layer(layer, Settings(1, 1, 0, thread_counts=(1, 2)))
    assert [r['op'] for r in rows] == list(layer.ops)
    for row in rows:
        assert set(row['torch_ms']) == {
            f'torch {n}t {fmt}' for n in (1, 2) for fmt in ('channels_last', 'contiguous')
        }
        assert row['torch_fastest_ms'] == min(row['torch_ms'].values())
        assert row['torch_over_jax'] == pytest.approx(row['torch_fastest_ms'] / row['jax_ms'])
        assert row['torch_gflops'] == pytest.approx(row['flops'] / row['torch_fastest_ms'] / 1e6)


def test_rows_table_and_json(dcgan, layers, tmp_path):
    """A row per (layer, op) with XLA's FLOPs: a plain conv's forward is 2 * outputs * taps
    (kernel height * width * input channels), less the taps that fall on padding."""
    result = conv_benchmark.run_benchmark({'dcgan_mnist': dcgan}, Settings(1, 1, 0))
    rows = result['configs']['dcgan_mnist']['rows']
    assert [(r['layer'], r['batch'], r['op']) for r in rows] == [
        (x.label, x.lhs_shape[0], op) for x in layers for op in x.ops
    ]
    for row in rows:
        assert row['jax_ms'] > 0 and row['flops'] > 0 and row['torch_ms'] == {}
        assert row['jax_gflops'] == pytest.approx(row['flops'] / row['jax_ms'] / 1e6)
        if row['op'] == 'forward' and row['lhs_dilation'] == (1, 1):
            upper = 2 * np.prod(row['out_shape']) * np.prod(row['kernel_shape'][:-1])
            assert 0.5 * upper < row['flops'] <= upper
    totals = result['configs']['dcgan_mnist']['totals']
    assert totals['jax_ms'] == pytest.approx(sum(r['jax_ms'] for r in rows))
    table = conv_benchmark.markdown_table(result['configs']).splitlines()
    assert len(table) == 2 + len(rows) + 1
    assert table[2].startswith('| dcgan_mnist | UpConvStack/ConvTranspose_0 conv transpose 4x4x8')
    assert table[-1].startswith('| dcgan_mnist | **total** |')
    logs.write_json(tmp_path / 'conv.json', result)
    saved = json.loads((tmp_path / 'conv.json').read_text())
    assert len(saved['configs']['dcgan_mnist']['rows']) == len(rows)
    assert saved['machine']['cpu_count'] > 0
