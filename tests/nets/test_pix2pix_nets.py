"""pix2pix's U-Net and PatchGAN against their definitions: shapes, the PatchGAN's receptive
field measured by gradients, the scaled patch, and per-example dropout."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_models.nets import pix2pix


def test_unet_maps_images_to_images_in_range():
    net = pix2pix.UNet(channels=3, width=8, depth=5)
    x = jax.random.uniform(jax.random.key(0), (2, 32, 32, 1), minval=-1, maxval=1)
    params = net.init(jax.random.key(1), x)
    out = net.apply(params, x)
    assert out.shape == (2, 32, 32, 3)
    assert float(jnp.max(jnp.abs(out))) <= 1.0


def test_unet_output_pixel_sees_the_whole_image_through_its_bottleneck():
    net = pix2pix.UNet(channels=1, width=4, depth=5)
    x = jax.random.uniform(jax.random.key(0), (1, 32, 32, 1))
    params = net.init(jax.random.key(1), x)
    grad = jax.grad(lambda x: net.apply(params, x)[0, 0, 0, 0])(x)
    assert np.all(np.abs(np.asarray(grad[0, ..., 0])) > 0)


@pytest.mark.parametrize('layers, side', [(0, 32), (1, 64), (2, 64), (3, 128)])
def test_patchgan_receptive_field_is_its_definition(layers, side):
    net = pix2pix.PatchGAN(width=4, layers=layers, normalize=False)
    pair = jax.random.normal(jax.random.key(0), (1, side, side, 2))
    params = net.init(jax.random.key(1), pair)
    logits = net.apply(params, pair)
    assert logits.shape == (1, side // 2**layers, side // 2**layers)
    centre = side // 2**layers // 2
    grad = jax.grad(lambda p: net.apply(params, p)[0, centre, centre])(pair)
    rows, cols = np.nonzero(np.abs(np.asarray(grad[0])).sum(-1))
    assert rows.max() - rows.min() + 1 == pix2pix.receptive_field(layers)
    assert cols.max() - cols.min() + 1 == pix2pix.receptive_field(layers)


def test_receptive_fields_and_the_scaled_patch():
    assert [pix2pix.receptive_field(n) for n in range(4)] == [7, 16, 34, 70]
    assert pix2pix.scaled_patch_layers(256) == 3  # pix2pix's 70 x 70 PatchGAN
    # 70 / 256 of the side: 7 px of 32 (0.22) is nearer than 16 px (0.5).
    assert pix2pix.scaled_patch_layers(32) == 0
    assert pix2pix.scaled_patch_layers(64) == 1


def test_dropout_masks_of_an_example_do_not_depend_on_its_batch():
    net = pix2pix.UNet(channels=1, width=4, depth=4)
    x = jax.random.uniform(jax.random.key(0), (3, 16, 16, 1))
    keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(5), i))(jnp.arange(3))
    params = net.init(jax.random.key(1), x)
    whole = net.apply(params, x, keys)
    alone = net.apply(params, x[1:2], keys[1:2])
    np.testing.assert_allclose(whole[1:2], alone, rtol=1e-5, atol=1e-6)
    assert not np.allclose(net.apply(params, x, keys), net.apply(params, x))
