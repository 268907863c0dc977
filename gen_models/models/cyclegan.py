"""CycleGAN (Zhu et al. 2017): two generators between unpaired domains A and B, held together
by cycle consistency.

Batches are unpaired as for the hybrid (`transform.pairing='unpaired'`): on each device,
domain A holds the inputs x of the even examples and domain B the targets T(x) of the odd
ones, so no pair is given, yet every translation G(x) has an exact target T(x) to be scored
against. G: A -> B and F: B -> A are ResNet generators (`gen_models.nets.cyclegan`), D_A and
D_B PatchGANs on single images (`gen_models.nets.pix2pix`, patch scaled to the image as for
pix2pix). The generators minimise

    L_GAN(D_B(G(a))) + L_GAN(D_A(F(b)))
    + cycle_weight * (|F(G(a)) - a|_1 + |G(F(b)) - b|_1)
    + cycle_weight * identity_weight * (|G(b) - b|_1 + |F(a) - a|_1)

(means over pixels in [-1, 1]; CycleGAN: least-squares GAN losses, cycle_weight 10,
identity_weight 0.5), and each D half the least-squares loss of telling real images of its
domain from generated ones drawn from an image pool of the last `model.pool_size` fakes
(`gen_models.image_pool`, carried in the state's `batch_stats`; queried with the global
batch, so every device keeps the same pool). Both players update from the same step, D at
lr * optim.d_lr_multiplier. Evaluation scores G's translations of the eval inputs against
their exact targets (MSE, PSNR, SSIM, as the hybrid), with the cycle error.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax

from gen_models import config as cfg
from gen_models import image_pool, losses, optim
from gen_models.data import transforms
from gen_models.metrics import transformation
from gen_models.models import base, translation
from gen_models.nets import cyclegan as generators
from gen_models.nets import pix2pix as patchgan

GENERATORS = {'a': 'generator_ab', 'b': 'generator_ba'}  # by input domain
DISCRIMINATORS = {'a': 'discriminator_a', 'b': 'discriminator_b'}  # by judged domain


def defaults() -> ml_collections.ConfigDict:
    """`config.model` of CycleGAN at its paper's settings (128 px: 6 residual blocks)."""
    model = ml_collections.ConfigDict()
    model.width = 64  # channels of the generators' first layer and the PatchGANs' first
    model.blocks = 6  # residual blocks per generator (CycleGAN: 9 at 256 px, 6 at 128 px)
    model.d_layers = -1  # PatchGAN stride-2 layers; -1 = scaled to the image side
    model.cycle_weight = 10.0  # lambda of the cycle-consistency L1 terms
    model.identity_weight = 0.5  # identity L1 terms, as a multiple of cycle_weight
    model.pool_size = 50  # past generated images each discriminator draws from
    model.gan_loss = 'least_squares'  # CycleGAN's; any of losses.GAN_LOSSES
    return model


RULES: dict[str, cfg.Rule] = {
    'model.width': cfg.at_least(1),
    'model.blocks': cfg.at_least(0),
    'model.d_layers': cfg.at_least(-1),
    'model.cycle_weight': cfg.at_least(0),
    'model.identity_weight': cfg.at_least(0),
    'model.pool_size': cfg.at_least(1),
    'model.gan_loss': cfg.choice(*losses.GAN_LOSSES),
}


def validate(config: ml_collections.ConfigDict, info: Any, num_devices: int) -> None:
    """Unpaired transforms, two domains per device, image sides divisible by 4."""
    if config.transform.pairing != 'unpaired' and config.transform.name != 'none':
        # With transform 'none' (the family's default) both domains are the dataset itself.
        raise cfg.ConfigError('transform.pairing', config.transform.pairing, "'unpaired'")
    batch = config.train.batch_size
    if batch % (2 * num_devices):
        raise cfg.ConfigError(
            'train.batch_size',
            batch,
            f'a multiple of 2 x the device count ({2 * num_devices}): each device splits its '
            'examples into domains A and B',
        )
    sides = info.image_shape[:2] if info is not None else (4 * transformation.WINDOW,)
    if any(side % 4 for side in sides) or min(sides) < transformation.WINDOW:
        raise cfg.ConfigError(
            'dataset.name',
            config.dataset.name,
            f'images with sides divisible by 4, at least {transformation.WINDOW} px '
            f'(got {tuple(info.image_shape)})',
        )


def gathered(values: jax.Array) -> jax.Array:
    return jax.lax.all_gather(values, base.DATA_AXIS, tiled=True)


def local_rows(values: jax.Array, num: int) -> jax.Array:
    """This device's `num` rows of a gathered array."""
    start = jax.lax.axis_index(base.DATA_AXIS) * num
    return jax.lax.dynamic_slice_in_dim(values, start, num)


@dataclasses.dataclass(frozen=True, eq=False)
class CycleGAN:
    """One model's networks and settings; its methods are the model's functions."""

    generator: base.Net
    discriminator: base.Net
    tx: optax.GradientTransformation
    d_tx: optax.GradientTransformation
    transform_config: Any
    kind: str
    cycle_weight: Any
    identity_weight: Any
    pool_size: int

    def init(self, rng, batch) -> base.TrainState:
        keys = jax.random.split(rng, 4)
        x = base.images_to_symmetric(batch['image'][:1])
        generators = {
            name: self.generator.init(key, x)['params']
            for name, key in zip(GENERATORS.values(), keys[:2])
        }
        critics = {
            name: self.discriminator.init(key, x)['params']
            for name, key in zip(DISCRIMINATORS.values(), keys[2:])
        }
        pools = {domain: image_pool.init(x.shape[1:], self.pool_size) for domain in 'ab'}
        return base.TrainState(
            step=jnp.zeros((), jnp.int32),
            params={**generators, **critics},
            batch_stats={'pools': pools},
            opt_state={
                'generators': self.tx.init(generators),
                'discriminators': self.d_tx.init(critics),
            },
        )

    def pairs(self, images, keys):
        """(input, target) in [0, 1] of uint8 images; `keys` draw noise and masks."""
        return transforms.make_pair(self.transform_config, base.images_to_unit(images), keys)

    def translate(self, params, images, source_domain):
        """The other domain's images for images in [-1, 1] of `source_domain`."""
        return self.generator.apply({'params': params[GENERATORS[source_domain]]}, images)

    def critic(self, params, images, domain):
        return self.discriminator.apply({'params': params[DISCRIMINATORS[domain]]}, images)

    def generator_terms(self, generators, critics, x):
        """(loss, (metrics, fakes by domain)) for real images x = {'a': .., 'b': ..} in
        [-1, 1]."""
        params = {**generators, **critics}
        other = {'a': 'b', 'b': 'a'}
        fakes = {other[d]: self.translate(params, x[d], d) for d in 'ab'}  # fakes['b'] = G(a)
        adversarial = sum(
            jnp.mean(losses.generator_loss(self.critic(params, fakes[d], d), self.kind))
            for d in 'ab'
        )
        cycle = sum(
            jnp.mean(jnp.abs(self.translate(params, fakes[other[d]], other[d]) - x[d]))
            for d in 'ab'
        )
        identity = sum(
            jnp.mean(jnp.abs(self.translate(params, x[other[d]], d) - x[other[d]])) for d in 'ab'
        )
        loss = adversarial + self.cycle_weight * (cycle + self.identity_weight * identity)
        metrics = {'g_loss': adversarial, 'cycle_loss': cycle, 'identity_loss': identity}
        return loss, (metrics, fakes)

    def train_step(self, state, batch, rng):
        pair_rng, pool_rng = jax.random.split(rng)
        num = batch['image'].shape[0]
        source, target = self.pairs(batch['image'], base.example_keys(pair_rng, num))
        x = {'a': 2.0 * source[0::2] - 1.0, 'b': 2.0 * target[1::2] - 1.0}
        generators = {name: state.params[name] for name in GENERATORS.values()}
        critics = {name: state.params[name] for name in DISCRIMINATORS.values()}
        (loss, (metrics, fakes)), grads = jax.value_and_grad(self.generator_terms, has_aux=True)(
            generators, critics, x
        )
        grads = jax.lax.pmean(grads, base.DATA_AXIS)
        new_generators, g_opt = base.apply_gradients(
            self.tx, grads, state.opt_state['generators'], generators
        )
        pools, shown = {}, {}
        for index, domain in enumerate('ab'):
            fake = gathered(jax.lax.stop_gradient(fakes[domain]))
            keys = base.index_keys(jax.random.fold_in(pool_rng, index), fake.shape[0])
            pools[domain], drawn = image_pool.query(state.batch_stats['pools'][domain], fake, keys)
            shown[domain] = local_rows(drawn, x[domain].shape[0])

        def critic_loss(critics):
            params = {**generators, **critics}
            return sum(
                0.5
                * jnp.mean(
                    losses.discriminator_loss(
                        self.critic(params, x[d], d), self.critic(params, shown[d], d), self.kind
                    )
                )
                for d in 'ab'
            )

        d_loss, d_grads = jax.value_and_grad(critic_loss)(critics)
        d_grads = jax.lax.pmean(d_grads, base.DATA_AXIS)
        new_critics, d_opt = base.apply_gradients(
            self.d_tx, d_grads, state.opt_state['discriminators'], critics
        )
        metrics.update(loss=loss, d_loss=d_loss)
        new_state = state.replace(
            step=state.step + 1,
            params={**new_generators, **new_critics},
            batch_stats={'pools': pools},
            opt_state={'generators': g_opt, 'discriminators': d_opt},
        )
        return new_state, jax.lax.pmean(metrics, base.DATA_AXIS)

    def transform(self, state, images, rng):
        """G's translations A -> B of images in [0, 1] (deterministic)."""
        del rng
        return (self.translate(state.params, 2.0 * images - 1.0, 'a') + 1.0) / 2.0

    def eval_step(self, state, batch, rng):
        num = batch['image'].shape[0]
        keys = base.example_keys(rng, num)
        source, target = self.pairs(batch['image'], keys)
        output = self.transform(state, source, rng)
        per_example = translation.output_scores(output, source, target, self.transform_config, keys)
        back = self.translate(state.params, 2.0 * output - 1.0, 'b')
        per_example['cycle_l1'] = jnp.mean(jnp.abs(back - (2.0 * source - 1.0)), axis=(1, 2, 3))
        return base.masked_sums(per_example, batch['mask'])


def build(config, info) -> base.ModelDef:
    """The CycleGAN `ModelDef` for `config` on a dataset described by `info`."""
    model_config = config.model
    side = min(info.image_shape[:2])
    num_steps = config.train.num_steps
    layers = model_config.d_layers
    if layers < 0:
        layers = patchgan.scaled_patch_layers(side)
    wrap = base.compute_dtype_wrapper(config)
    model = CycleGAN(
        generator=wrap(
            generators.ResNetGenerator(
                channels=info.image_shape[-1], width=model_config.width, blocks=model_config.blocks
            )
        ),
        discriminator=wrap(
            patchgan.PatchGAN(
                width=model_config.width,
                layers=layers,
            )
        ),
        tx=optim.make_optimizer(config.optim, config.lr, num_steps),
        d_tx=optim.make_optimizer(
            config.optim, config.lr * config.optim.d_lr_multiplier, num_steps
        ),
        transform_config=config.transform,
        kind=model_config.gan_loss,
        cycle_weight=model_config.cycle_weight,
        identity_weight=model_config.identity_weight,
        pool_size=model_config.pool_size,
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
        summary_keys=('loss', 'cycle_loss', 'd_loss'),
        protocol={
            'transform': config.transform.to_dict(),
            'metric_units': 'cycle_l1: mean |F(G(x)) - x| in [-1, 1] units; '
            + transformation.PROTOCOL,
            'patch_size': patchgan.receptive_field(layers),
        },
        sample_grids=sample_grids,
    )


FAMILY = base.Family(
    name='cyclegan',
    defaults=defaults,
    build=build,
    rules=RULES,
    validate=validate,
    traced=('model.cycle_weight', 'model.identity_weight'),
    reads=('transform.*', 'optim.d_lr_multiplier'),
)
