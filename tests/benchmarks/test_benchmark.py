"""The benchmark harness on tiny configs: rows, FLOP counts, donation, and the PyTorch twins
(skipped where torch is not installed). Nothing here depends on how fast anything runs."""

import importlib
import json

import jax
import numpy as np
import pytest

from benchmarks import benchmark
from experiments import logs, runtime
from gen_models import parallel
from gen_models.config import ConfigError

TORCH_MISSING = "torch is not installed (pip install -e '.[bench]')"


def tiny(config_name: str, data_dir: str, **model):
    """A reference config on 16 px shapes (no download) with narrow nets and batch 8."""
    config = importlib.import_module(f'configs.{config_name}').get_config()
    config.dataset.name = 'shapes'
    config.dataset.data_dir = data_dir
    config.dataset.shapes_resolution = 16
    config.model.update({'width': 4, 'latent_dim': 3, 'hidden': (16,), **model})
    config.train.batch_size = 8
    return config


def tiny_configs(data_dir: str) -> dict:
    return {name: tiny(name, data_dir) for name in ('dcgan_mnist', 'vae_mnist', 'vae_mlp_mnist')}


def test_jax_rows_table_and_json(data_dir, tmp_path):
    result = benchmark.run_benchmark(
        tiny_configs(data_dir), steps=2, repeats=2, warmup=1, torch_threads=[]
    )
    rows = result['rows']
    assert [(r['config'], r['framework']) for r in rows] == [
        ('dcgan_mnist', 'jax'),
        ('vae_mnist', 'jax'),
        ('vae_mlp_mnist', 'jax'),
    ]
    for row in rows:
        assert row['images_per_second'] > 0
        assert row['step_ms'] == pytest.approx(1e3 * row['batch_size'] / row['images_per_second'])
        assert 0.0 <= row['input_wait_fraction'] < 1.0
        assert row['lower_seconds'] > 0 and row['compile_seconds'] > 0
        assert row['flops_per_step'] > 0
        assert row['donation_warnings'] == 0
        assert row['image_shape'] == [16, 16, 1]
    assert result['matmul_gflops'] > 0
    table = benchmark.markdown_table(rows, result['matmul_gflops']).splitlines()
    assert len(table) == 2 + len(rows) and table[2].startswith('| dcgan_mnist | jax |')
    logs.write_json(tmp_path / 'bench.json', result)
    assert json.loads((tmp_path / 'bench.json').read_text())['rows'][0]['config'] == 'dcgan_mnist'


def test_flops_per_step_counts_the_mlp_matmuls(data_dir):
    """XLA's FLOP count of the MLP VAE step against the matmuls counted by hand: forward,
    weight gradients, and input gradients of every layer but the first. (Without dynamic
    binarisation: XLA counts the integer ops of its per-pixel Threefry hashes as FLOPs.)"""
    config = tiny('vae_mlp_mnist', data_dir, hidden=(200,), latent_dim=4)
    config.dataset.binarize = False
    config.train.batch_size = 64
    _, facts = benchmark.jax_block(config)
    pixels, hidden, latent = 16 * 16, 200, 4
    layers = [(pixels, hidden), (hidden, 2 * latent), (latent, hidden), (hidden, pixels)]
    macs = sum(i * o for i, o in layers)
    matmul_flops = 2 * 64 * (2 * macs + macs - pixels * hidden)
    assert matmul_flops <= facts['flops_per_step'] <= 1.1 * matmul_flops


def test_train_step_donates_the_state(data_dir):
    """The state's buffers are reused for the new state: the old ones are gone afterwards."""
    run = runtime.prepare(tiny('vae_mnist', data_dir))
    state = runtime.initial_state(run)
    batch = parallel.shard_batch(
        {'image': np.zeros((8, 16, 16, 1), np.uint8), 'label': np.zeros(8, np.int32)}, run.mesh
    )
    new_state, _ = parallel.train_step(run.model.train_step, run.mesh)(
        state, batch, run.keys['train']
    )
    jax.block_until_ready(new_state)
    assert all(leaf.is_deleted() for leaf in jax.tree.leaves(state.params))
    assert not any(leaf.is_deleted() for leaf in jax.tree.leaves(new_state.params))


@pytest.mark.parametrize('config_name', ['dcgan_mnist', 'vae_mnist', 'vae_mlp_mnist'])
def test_torch_twin_has_the_same_layer_shapes(config_name, data_dir):
    pytest.importorskip('torch', reason=TORCH_MISSING)
    from benchmarks import torch_reference

    config = tiny(config_name, data_dir)
    run = runtime.prepare(config)
    params = jax.jit(run.model.init)(
        jax.random.key(0), {'image': np.zeros((1, 16, 16, 1), np.uint8)}
    ).params
    twin = torch_reference.build(config, run.info.image_shape)
    if config.model.name == 'vae':  # one optimiser over both nets: compare per net
        params = {'encoder': params['encoder'], 'decoder': params['decoder']}
    assert set(twin.networks) == set(params)
    for name, network in twin.networks.items():
        jax_sizes = sorted(leaf.size for leaf in jax.tree.leaves(params[name]))
        assert torch_reference.parameter_sizes(network) == jax_sizes, name


def test_torch_twin_trains(data_dir):
    """The torch MLP VAE's loss falls on a fixed batch: its step really optimises."""
    torch = pytest.importorskip('torch', reason=TORCH_MISSING)
    from benchmarks import torch_reference

    torch.manual_seed(0)
    config = tiny('vae_mlp_mnist', data_dir)
    config.dataset.binarize = False
    twin = torch_reference.build(config, (16, 16, 1))
    images = torch_reference.to_torch_images(
        np.random.default_rng(0).integers(0, 256, (32, 16, 16, 1), dtype=np.uint8)
    )
    losses = [float(twin.train_step(images)['loss']) for _ in range(40)]
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 1.0


def test_jax_and_torch_blocks_interleave(data_dir):
    pytest.importorskip('torch', reason=TORCH_MISSING)
    result = benchmark.run_benchmark(
        {'dcgan_mnist': tiny('dcgan_mnist', data_dir)},
        steps=2,
        repeats=2,
        warmup=1,
        torch_threads=['1'],
    )
    jax_row, torch_row = result['rows']
    assert torch_row['framework'] == 'torch (1 thread)'
    assert jax_row['vs_torch_of'] == 'torch (1 thread)' and jax_row['vs_torch'] > 0
    assert torch_row['images_per_second'] > 0 and 0.0 <= torch_row['input_wait_fraction'] < 1.0
    assert 'vs torch' in benchmark.markdown_table(result['rows'], result['matmul_gflops'])


def test_load_config_sets_the_batch_size_or_keeps_the_configs_own():
    assert benchmark.load_config('dcgan_mnist', 16).train.batch_size == 16
    assert benchmark.load_config('dcgan_mnist:wgan_gp', 0).train.batch_size == 5 * 64


def test_torch_device_without_cuda_is_refused_before_any_work(data_dir):
    torch = pytest.importorskip('torch', reason=TORCH_MISSING)
    if torch.cuda.is_available():
        pytest.skip('this machine has CUDA: the refusal is for machines without it')
    with pytest.raises(ValueError, match=r'--torch_device=cuda: torch .* sees no CUDA device'):
        benchmark.run_benchmark(
            tiny_configs(data_dir),
            steps=1,
            repeats=1,
            warmup=0,
            torch_threads=['1'],
            torch_device='cuda',
        )


def test_variants_time_bfloat16_and_several_steps_per_call(data_dir):
    """Each (dtype, K) is a row labelled by what differs, timed in train steps (a K-step call
    counts K), with one step's FLOPs; the torch twin runs beside the plain row only."""
    configs = benchmark.variants(['vae_mlp_mnist'], 8, ['float32', 'bfloat16'], [1, 2])
    assert list(configs) == [
        'vae_mlp_mnist',
        'vae_mlp_mnist [K=2]',
        'vae_mlp_mnist [bfloat16]',
        'vae_mlp_mnist [bfloat16, K=2]',
    ]
    assert [benchmark.twin_threads(c, [1]) for c in configs.values()] == [[1], [], [], []]
    assert configs['vae_mlp_mnist [K=2]'].train.log_every % 2 == 0
    tiny_net = tiny('vae_mlp_mnist', data_dir)
    for config in configs.values():
        config.dataset, config.model = tiny_net.dataset, tiny_net.model
    result = benchmark.run_benchmark(configs, steps=2, repeats=2, warmup=2, torch_threads=[])
    rows = {row['config']: row for row in result['rows']}
    assert rows.keys() == configs.keys()
    plain = rows['vae_mlp_mnist']['flops_per_step']
    for row in rows.values():
        assert row['images_per_second'] > 0
        assert row['flops_per_step'] == pytest.approx(plain, rel=0.1)


def test_a_bad_variant_is_one_line_before_any_compile():
    with pytest.raises(ConfigError, match="train.compute_dtype='float16'.*'bfloat16'"):
        benchmark.variants(['vae_mlp_mnist'], 8, ['float16'], [1])
