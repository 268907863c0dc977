"""pix2pix (Isola et al. 2017): a U-Net from the input image to its transformation, trained on
L1 to the exact target plus a conditional PatchGAN; without the adversary, the U-Net
regression baseline.

Pairs (x, x') come from `config.transform` on device, as for the hybrid, so every output is
scored against its exact target. Images are in [-1, 1] inside the nets. The loss of G is

    l1_weight * mean |G(x) - x'| + adversarial_weight * L_G(D(x, G(x)))

(pix2pix: 100 and 1, the non-saturating cross-entropy `model.gan_loss`), and D, a PatchGAN
on the channel-concatenated (input, image) pair with `model.d_layers` stride-2 layers (-1:
scaled so that its patch covers the fraction of the image pix2pix's 70 px patch covers of
256 px; `nets.pix2pix.scaled_patch_layers`), minimises half the cross-entropy of telling
(x, x') from (x, G(x)). Both players update from the same step (D against the current
outputs, G against the current D), D at lr * optim.d_lr_multiplier. Dropout in the U-Net's
decoder is the only noise, in training and at test time, as in pix2pix; each example's
masks come from its own key. `model.use_adversarial=False` (or adversarial_weight 0) is the
'unet' baseline: L1 alone, no discriminator.

Evaluation (per example): the L1 loss and MSE, PSNR and SSIM of the outputs against the
exact targets, of the inputs ('identity_*') and, for inpainting, of the completed images
('completed_*'), as the hybrid reports them.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax
from ml_collections import config_dict

from gen_models import config as cfg
from gen_models import losses, optim
from gen_models.data import transforms
from gen_models.metrics import transformation
from gen_models.models import base, translation
from gen_models.nets import pix2pix as nets


def defaults() -> ml_collections.ConfigDict:
    """`config.model` of pix2pix at its paper's settings (nets' width 64)."""
    model = ml_collections.ConfigDict()
    model.width = 64  # channels of the first U-Net and PatchGAN layers (doubling, capped 8x)
    model.depth = 0  # U-Net stride-2 levels; 0 = down to 1 x 1 (log2 of the image side)
    model.dropout_layers = 3  # U-Net decoder layers nearest the bottleneck with dropout 0.5
    model.d_layers = -1  # PatchGAN stride-2 layers; -1 = scaled to the image side
    model.l1_weight = 100.0  # weight of the L1 distance to the target
    model.adversarial_weight = 1.0  # weight of G's GAN loss
    model.use_adversarial = config_dict.placeholder(bool)  # the PatchGAN; None = on when
    # adversarial_weight > 0; False = the U-Net L1 baseline
    model.gan_loss = 'non_saturating'  # G's loss: 'non_saturating' (pix2pix) | 'hinge' | ...
    return model


RULES: dict[str, cfg.Rule] = {
    'model.width': cfg.at_least(1),
    'model.depth': cfg.at_least(0),
    'model.dropout_layers': cfg.at_least(0),
    'model.d_layers': cfg.at_least(-1),
    'model.l1_weight': cfg.at_least(0),
    'model.adversarial_weight': cfg.at_least(0),
    'model.gan_loss': cfg.choice(*losses.GAN_LOSSES),
}


def depth(config: ml_collections.ConfigDict, side: int) -> int:
    return config.model.depth or int(math.log2(side))


def validate(config: ml_collections.ConfigDict, info: Any, num_devices: int) -> None:
    """Paired transforms only; image sides the U-Net can halve `model.depth` times."""
    del num_devices
    if config.transform.pairing != 'paired':
        raise cfg.ConfigError('transform.pairing', config.transform.pairing, "'paired'")
    if info is None:
        return
    side = min(info.image_shape[:2])
    levels = depth(config, side)
    if any(s % 2**levels for s in info.image_shape[:2]):
        key = 'model.depth' if config.model.depth else 'dataset.name'
        raise cfg.ConfigError(
            key,
            config.model.depth or config.dataset.name,
            f'image sides divisible by 2**depth ({2**levels}); got {tuple(info.image_shape)}',
        )
    if side < transformation.WINDOW:
        raise cfg.ConfigError(
            'dataset.name', config.dataset.name, f'images of at least {transformation.WINDOW} px'
        )


@dataclasses.dataclass(frozen=True, eq=False)
class Pix2Pix:
    """One model's networks and settings; its methods are the model's functions."""

    generator: base.Net
    discriminator: base.Net
    tx: optax.GradientTransformation
    d_tx: optax.GradientTransformation
    transform_config: Any
    adversarial: bool
    kind: str
    l1_weight: Any
    adversarial_weight: Any

    def init(self, rng, batch) -> base.TrainState:
        g_rng, d_rng = jax.random.split(rng)
        x = base.images_to_symmetric(batch['image'][:1])
        params = {'generator': self.generator.init(g_rng, x)['params']}
        opt_state = {'generator': self.tx.init(params['generator'])}
        if self.adversarial:
            pair = jnp.concatenate([x, x], axis=-1)
            params['discriminator'] = self.discriminator.init(d_rng, pair)['params']
            opt_state['discriminator'] = self.d_tx.init(params['discriminator'])
        return base.TrainState(jnp.zeros((), jnp.int32), params, {}, opt_state)

    def pairs(self, images, keys):
        """(input, target) in [0, 1] of uint8 images; `keys` draw noise and masks."""
        return transforms.make_pair(self.transform_config, base.images_to_unit(images), keys)

    def outputs(self, params, source, dropout_keys):
        """G's images in [0, 1] for inputs in [0, 1]."""
        out = self.generator.apply({'params': params}, 2.0 * source - 1.0, dropout_keys)
        return (out + 1.0) / 2.0

    def critic(self, d_params, source, image):
        pair = jnp.concatenate([2.0 * source - 1.0, 2.0 * image - 1.0], axis=-1)
        return self.discriminator.apply({'params': d_params}, pair)

    def train_step(self, state, batch, rng):
        pair_rng, dropout_rng = jax.random.split(rng)
        num = batch['image'].shape[0]
        source, target = self.pairs(batch['image'], base.example_keys(pair_rng, num))
        dropout_keys = base.example_keys(dropout_rng, num)
        d_params = state.params.get('discriminator')

        def generator_loss(params):
            output = self.outputs(params, source, dropout_keys)
            l1 = jnp.mean(jnp.abs(output - target)) * 2.0  # in [-1, 1] units, as pix2pix
            metrics = {'l1': l1}
            loss = self.l1_weight * l1
            if self.adversarial:
                metrics['g_loss'] = jnp.mean(
                    losses.generator_loss(self.critic(d_params, source, output), self.kind)
                )
                loss = loss + self.adversarial_weight * metrics['g_loss']
            return loss, (metrics, output)

        (loss, (metrics, output)), grads = jax.value_and_grad(generator_loss, has_aux=True)(
            state.params['generator']
        )
        grads = jax.lax.pmean(grads, base.DATA_AXIS)
        params, opt_state = {}, {}
        params['generator'], opt_state['generator'] = base.apply_gradients(
            self.tx, grads, state.opt_state['generator'], state.params['generator']
        )
        if self.adversarial:
            fake = jax.lax.stop_gradient(output)

            def discriminator_loss(d_params):
                real_logits = self.critic(d_params, source, target)
                fake_logits = self.critic(d_params, source, fake)
                return 0.5 * jnp.mean(
                    losses.discriminator_loss(real_logits, fake_logits, self.kind)
                )

            d_loss, d_grads = jax.value_and_grad(discriminator_loss)(d_params)
            d_grads = jax.lax.pmean(d_grads, base.DATA_AXIS)
            params['discriminator'], opt_state['discriminator'] = base.apply_gradients(
                self.d_tx, d_grads, state.opt_state['discriminator'], d_params
            )
            metrics['d_loss'] = d_loss
        metrics['loss'] = loss
        new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state)
        return new_state, jax.lax.pmean(metrics, base.DATA_AXIS)

    def eval_step(self, state, batch, rng):
        pair_rng, dropout_rng = jax.random.split(rng)
        num = batch['image'].shape[0]
        keys = base.example_keys(pair_rng, num)
        source, target = self.pairs(batch['image'], keys)
        output = self.outputs(
            state.params['generator'], source, base.example_keys(dropout_rng, num)
        )
        per_example = translation.output_scores(output, source, target, self.transform_config, keys)
        per_example['l1'] = jnp.mean(jnp.abs(output - target), axis=(1, 2, 3)) * 2.0
        return base.masked_sums(per_example, batch['mask'])

    def transform(self, state, images, rng):
        """Outputs for model inputs `images` in [0, 1], dropout masks from `rng`."""
        keys = base.index_keys(rng, images.shape[0])
        return self.outputs(state.params['generator'], images, keys)


def build(config, info) -> base.ModelDef:
    """The pix2pix `ModelDef` for `config` on a dataset described by `info`."""
    model_config = config.model
    side = min(info.image_shape[:2])
    num_steps = config.train.num_steps
    d_layers = model_config.d_layers
    if d_layers < 0:
        d_layers = nets.scaled_patch_layers(side)
    wrap = base.compute_dtype_wrapper(config)
    model = Pix2Pix(
        generator=wrap(
            nets.UNet(
                channels=info.image_shape[-1],
                width=model_config.width,
                depth=depth(config, side),
                dropout_layers=model_config.dropout_layers,
            )
        ),
        discriminator=wrap(
            nets.PatchGAN(
                width=model_config.width,
                layers=d_layers,
            )
        ),
        tx=optim.make_optimizer(config.optim, config.lr, num_steps),
        d_tx=optim.make_optimizer(
            config.optim, config.lr * config.optim.d_lr_multiplier, num_steps
        ),
        transform_config=config.transform,
        adversarial=base.switch(model_config.use_adversarial, model_config.adversarial_weight),
        kind=model_config.gan_loss,
        l1_weight=model_config.l1_weight,
        adversarial_weight=model_config.adversarial_weight,
    )

    def sample_grids(state, rng, num_samples, eval_batch):
        return {
            'transformations': translation.transformation_grid(
                model.transform, config.transform, state, rng, num_samples, eval_batch
            )
        }

    return base.ModelDef(
        init=model.init,
        train_step=model.train_step,
        eval_step=model.eval_step,
        generate=None,
        transform=model.transform,
        pairs=model.pairs,
        image_range=(0.0, 1.0),
        summary_keys=('loss', 'l1', 'd_loss'),
        protocol={
            'transform': config.transform.to_dict(),
            'metric_units': 'l1: mean |output - target| in [-1, 1] units; '
            + transformation.PROTOCOL,
            'patch_layers': d_layers,
            'patch_size': nets.receptive_field(d_layers),
        },
        sample_grids=sample_grids,
    )


FAMILY = base.Family(
    name='pix2pix',
    defaults=defaults,
    build=build,
    rules=RULES,
    validate=validate,
    traced=('model.l1_weight', 'model.adversarial_weight'),
    toggles={'model.use_adversarial': 'model.adversarial_weight'},
    reads=('transform.*', 'optim.d_lr_multiplier'),
)
