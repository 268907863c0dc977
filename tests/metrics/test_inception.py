"""The Flax FID Inception against the original network's outputs, and its input pipeline."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_models.nets import inception

REFERENCE_DIR = inception.DEFAULT_INCEPTION_PATH.parent


@pytest.fixture(scope='module')
def weights_path():
    path = inception.inception_path()
    if not path.is_file():
        pytest.skip(f'FID Inception weights missing at {path}')
    return path


def test_port_reproduces_reference_pool3_features(weights_path):
    params = inception.load_params(weights_path)
    model = inception.FIDInception()
    expected_shapes = jax.eval_shape(
        lambda: model.init(jax.random.key(0), jnp.zeros((1, 299, 299, 3)))
    )
    assert jax.tree.map(jnp.shape, params) == jax.tree.map(
        lambda a: a.shape, expected_shapes['params']
    )
    inputs = np.load(REFERENCE_DIR / 'ref_input.npy').transpose(0, 2, 3, 1)  # NCHW -> NHWC
    reference = np.load(REFERENCE_DIR / 'ref_torch_feats.npy')
    apply = jax.jit(model.apply, compiler_options=inception.compiler_options())
    features = np.asarray(apply({'params': params}, inputs))
    assert features.shape == (2, inception.FEATURE_DIM)
    np.testing.assert_array_less(np.abs(features - reference).max(), 1e-5)


def test_load_params_folds_batch_norm_into_the_conv(weights_path):
    """The first conv with its folded kernel and bias is conv -> batch norm of the file's arrays."""
    with np.load(weights_path) as arrays:
        raw = {
            leaf: arrays[f'net.layers.conv.{leaf}'] for leaf in ('weight', 'beta', 'mean', 'var')
        }
    folded = inception.load_params(weights_path)['conv']
    x = np.load(REFERENCE_DIR / 'ref_input.npy')[:1, :, :31, :31].transpose(0, 2, 3, 1)
    conv = lambda kernel: jax.lax.conv_general_dilated(  # noqa: E731
        x, kernel, (2, 2), 'VALID', dimension_numbers=('NHWC', 'HWIO', 'NHWC')
    )
    expected = (conv(raw['weight'].transpose(2, 3, 1, 0)) - raw['mean']) / np.sqrt(
        raw['var'] + 1e-3
    ) + raw['beta']
    np.testing.assert_allclose(conv(folded['kernel']) + folded['bias'], expected, atol=1e-5)


@pytest.mark.parametrize('side', [7, 8])
def test_pools_equal_flax_pools(side):
    x = jnp.asarray(np.random.default_rng(0).standard_normal((2, side, side + 3, 4)), jnp.float32)
    np.testing.assert_array_equal(inception.max_pool_3x3(x), nn.max_pool(x, (3, 3), (2, 2)))
    np.testing.assert_array_equal(
        inception.max_pool_3x3(x, stride=1, padding=1),
        nn.max_pool(x, (3, 3), (1, 1), ((1, 1), (1, 1))),
    )
    np.testing.assert_allclose(
        inception.avg_pool_3x3(x),
        nn.avg_pool(x, (3, 3), (1, 1), ((1, 1), (1, 1)), count_include_pad=False),
        atol=1e-6,
    )


def test_compiler_options_only_on_cpu():
    assert inception.compiler_options('cpu') == inception.CPU_COMPILER_OPTIONS
    assert inception.compiler_options('gpu') == {}


def test_preprocess_scales_full_size_uint8_without_resampling():
    pixels = np.random.default_rng(0).integers(0, 256, (1, 299, 299, 3), dtype=np.uint8)
    out = np.asarray(inception.preprocess(jnp.asarray(pixels)))
    np.testing.assert_array_equal(out, (pixels.astype(np.float32) - 128.0) / 128.0)


def _tf_legacy_resize(image: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """TF1 `resize_bilinear(align_corners=False)` written pixel by pixel, as TF's kernel is."""
    in_h, in_w = image.shape[:2]
    out = np.zeros((out_h, out_w, image.shape[2]))
    for y in range(out_h):
        in_y = y * in_h / out_h
        top, bottom = int(np.floor(in_y)), min(int(np.ceil(in_y)), in_h - 1)
        for x in range(out_w):
            in_x = x * in_w / out_w
            left, right = int(np.floor(in_x)), min(int(np.ceil(in_x)), in_w - 1)
            upper = image[top, left] + (image[top, right] - image[top, left]) * (in_x - left)
            lower = image[bottom, left] + (image[bottom, right] - image[bottom, left]) * (
                in_x - left
            )
            out[y, x] = upper + (lower - upper) * (in_y - top)
    return out


def test_resize_matches_tf_legacy_bilinear_and_grey_becomes_rgb():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (2, 5, 7, 1), dtype=np.uint8)
    out = np.asarray(inception.preprocess(jnp.asarray(image), size=(11, 13)))
    assert out.shape == (2, 11, 13, 3)
    expected = (_tf_legacy_resize(image[1].astype(np.float64), 11, 13) - 128.0) / 128.0
    np.testing.assert_allclose(out[1], np.repeat(expected, 3, axis=-1), atol=1e-5)
    flat = np.full((1, 28, 28, 3), 77, np.uint8)
    np.testing.assert_allclose(
        np.asarray(inception.preprocess(jnp.asarray(flat))), -51 / 128, atol=1e-6
    )


def test_weights_path_from_config_then_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(inception.INCEPTION_ENV, str(tmp_path / 'env.npz'))
    assert inception.inception_path('given.npz').name == 'given.npz'
    assert inception.inception_path('') == tmp_path / 'env.npz'
    monkeypatch.delenv(inception.INCEPTION_ENV)
    assert inception.inception_path('') == inception.DEFAULT_INCEPTION_PATH
