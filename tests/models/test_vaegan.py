"""VAE-GAN: the losses of Larsen et al. against direct computations, and a short run on
shapes that stays finite while its reconstruction error falls."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import vaegan_mnist
from experiments import logs, runtime, train
from gen_models import data, nets, parallel, schema
from gen_models.config import ConfigError
from gen_models.models import vaegan
from tests.tiny import tiny


def _config(data_dir):
    config = tiny('vaegan_mnist', data_dir)
    config.dataset.name = 'shapes'
    return config


def test_feature_loss_is_a_gaussian_in_the_last_conv_features(data_dir):
    config = _config(data_dir)
    config.model.d_dropout = 0.0
    info = data.DatasetInfo((16, 16, 1), 0, 10, 10)
    model = vaegan.build(config, info)
    rng = np.random.default_rng(0)
    batch = {
        'image': rng.integers(0, 256, size=(4, 16, 16, 1), dtype=np.uint8),
        'label': np.zeros(4, np.int32),
        'mask': np.ones(4, np.float32),
    }
    state = model.init(jax.random.key(0), batch)
    mesh = parallel.make_mesh()
    sums = parallel.eval_step(model.eval_step, mesh)(
        state, parallel.shard_batch(batch, mesh), jax.random.key(1)
    )

    # The same numbers from the nets by hand: 2 stride-2 convs (16 -> 8 -> 4 px) with leaky
    # ReLU; Dis_l is the second conv's output before its activation.
    d = jax.tree.map(np.asarray, state.params['discriminator'])

    def conv(h, layer):
        out = jax.lax.conv_general_dilated(
            h, d[layer]['kernel'], (2, 2), 'SAME', dimension_numbers=('NHWC', 'HWIO', 'NHWC')
        )
        return np.asarray(out) + d[layer]['bias']

    def leaky(h):
        return np.where(h > 0, h, 0.2 * h)

    def dis_features(images):
        return conv(leaky(conv(images, 'Conv_0')), 'Conv_1')

    x = batch['image'].astype(np.float32) / 127.5 - 1
    eps_rng, _ = jax.random.split(jax.random.key(1))
    eps = np.stack([jax.random.normal(jax.random.fold_in(eps_rng, i), (4,)) for i in range(4)])
    encoder = nets.DownConvStack(outputs=2 * 4, width=8)  # tiny(): latent 4, width 8
    stats = encoder.apply({'params': state.params['encoder']}, x, train=False)
    mean, log_var = np.split(np.asarray(stats, np.float64), 2, axis=-1)
    recon = model.decode(state, mean + np.exp(0.5 * log_var) * eps)
    diff = (dis_features(x) - dis_features(np.asarray(recon))).reshape(4, -1)
    llike = 0.5 * (diff**2).sum(-1) + 0.5 * diff.shape[1] * np.log(2 * np.pi)
    assert float(sums['llike']) == pytest.approx(llike.sum(), rel=1e-4)
    kl = 0.5 * (np.exp(log_var) + mean**2 - 1 - log_var).sum(-1)
    assert float(sums['kl']) == pytest.approx(kl.sum(), rel=1e-4)


def test_short_run_on_shapes_is_finite_and_reconstructs_better(data_dir, tmp_path):
    config = _config(data_dir)
    config.train.update(
        num_steps=60, log_every=10, eval_every=60, checkpoint_every=60, sample_every=60
    )
    config.model.width = 16
    config.model.latent_dim = 16
    results = train.train_and_evaluate(config, tmp_path)
    assert all(np.isfinite(v) for v in results['metrics'].values())
    records = [r for r in logs.read_metrics(tmp_path) if 'train/recon_mse' in r]
    assert all(np.isfinite(r['train/d_loss']) and np.isfinite(r['train/llike']) for r in records)
    first, last = (
        records[0]['train/recon_mse'],
        np.mean([r['train/recon_mse'] for r in records[-3:]]),
    )
    assert last < 0.6 * first, (first, last)
    assert {'eval/kl', 'eval/llike', 'eval/g_loss', 'eval/d_loss', 'eval/recon_mse'} <= set(
        results['metrics']
    )
    for name in ('samples', 'reconstructions'):
        assert (tmp_path / 'samples' / f'{name}_0000060.png').is_file()
    run = runtime.prepare(config)
    state, _ = runtime.restore_latest(run, tmp_path)
    images = jax.jit(run.model.generate, static_argnums=2)(state, jax.random.key(0), 3)
    assert images.shape == (3, 28, 28, 1)
    assert float(jnp.min(images)) >= -1 and float(jnp.max(images)) <= 1


def test_vaegan_config_errors_and_variants():
    schema.validate(vaegan_mnist.get_config('paper'))
    for key, value in (('net', 'mlp'), ('conditional', True)):  # conv nets, unconditional
        config = vaegan_mnist.get_config()
        config.model[key] = value
        with pytest.raises(ConfigError, match=f"model.{key}=.*not a key of model family 'vaegan'"):
            schema.validate(config)
    config = vaegan_mnist.get_config()
    config.model.gan_loss = 'hinge'
    with pytest.raises(ConfigError, match="model.gan_loss='hinge'.*'minimax' | 'non_saturating'"):
        schema.validate(config)
    config = vaegan_mnist.get_config()
    config.model.vaegan_gamma = -1.0
    with pytest.raises(ConfigError, match='vaegan_gamma'):
        schema.validate(config)
