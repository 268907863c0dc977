"""A deterministic autoencoder: the reconstruction baseline of the latent-variable families.

x -> conv encoder -> code z (`model.latent_dim`) -> conv decoder -> x^ (the VAE's DCGAN-style
stacks, `gen_models.nets`), trained on the per-image
reconstruction loss of `model.loss`: 'bernoulli' (cross-entropy on the decoder's logits,
pixels in [0, 1]) or 'mse' (squared error of sigmoid outputs, summed over pixels). Without
a prior it generates nothing; its reconstructions bound what a VAE of the same nets can
reach, and eval reports their MSE and PSNR. This module is the worked example of
docs/adding_a_family.md: a family is one module (defaults, rules, build, FAMILY) and a config.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import ml_collections
import optax

from gen_models import config as cfg
from gen_models import losses, nets, optim
from gen_models.metrics import transformation
from gen_models.models import base


def defaults() -> ml_collections.ConfigDict:
    """`config.model` of the autoencoder."""
    model = ml_collections.ConfigDict()
    model.latent_dim = 16  # size of the code
    model.width = 32  # channels of the widest-resolution stage of both conv stacks
    model.kernel_size = 4  # kernel side of every conv layer
    model.loss = 'bernoulli'  # reconstruction loss: 'bernoulli' | 'mse'
    return model


RULES: dict[str, cfg.Rule] = {
    'model.latent_dim': cfg.at_least(1),
    'model.width': cfg.at_least(1),
    'model.kernel_size': cfg.at_least(1),
    'model.loss': cfg.choice('bernoulli', 'mse'),
}


def validate(config: ml_collections.ConfigDict, info, num_devices: int) -> None:
    """Image sides the conv stacks can use, once the data is known."""
    del num_devices
    if info is not None:
        base.check_conv_images(config, info)


def reconstruction_loss(logits: jax.Array, x: jax.Array, kind: str) -> jax.Array:
    """Per-image loss of decoder logits against x in [0, 1]."""
    if kind == 'bernoulli':
        return -losses.bernoulli_log_likelihood(logits, x)
    return jnp.sum(((jax.nn.sigmoid(logits) - x) ** 2).reshape(len(x), -1), axis=-1)


@dataclasses.dataclass(frozen=True, eq=False)
class Autoencoder:
    """The networks and settings of one autoencoder; its methods are the model's functions."""

    encoder: base.Net
    decoder: base.Net
    tx: optax.GradientTransformation
    latent_dim: int
    loss: str  # model.loss

    def init(self, rng, batch) -> base.TrainState:
        e_rng, d_rng = jax.random.split(rng)
        x = base.images_to_unit(batch['image'][:1])
        z = jnp.zeros((1, self.latent_dim))
        params = {
            'encoder': self.encoder.init(e_rng, x, train=False)['params'],
            'decoder': self.decoder.init(d_rng, z, train=False)['params'],
        }
        return base.TrainState(jnp.zeros((), jnp.int32), params, {}, {'ae': self.tx.init(params)})

    def logits(self, params, x):
        code = self.encoder.apply({'params': params['encoder']}, x, train=False)
        return self.decoder.apply({'params': params['decoder']}, code, train=False)

    def per_example(self, params, images) -> base.Metrics:
        """Loss, MSE and PSNR of each image's reconstruction."""
        x = base.images_to_unit(images)
        logits = self.logits(params, x)
        recon = jax.nn.sigmoid(logits)
        return {
            'loss': reconstruction_loss(logits, x, self.loss),
            'mse': transformation.mse(recon, x),
            'psnr': transformation.psnr(recon, x),
        }

    def train_step(self, state, batch, rng):
        del rng  # Deterministic.

        def loss_fn(params):
            terms = self.per_example(params, batch['image'])
            return jnp.mean(terms['loss']), terms

        (_, terms), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        grads = jax.lax.pmean(grads, base.DATA_AXIS)  # the global batch's gradient
        params, opt_state = base.apply_gradients(
            self.tx, grads, state.opt_state['ae'], state.params
        )
        metrics = {name: jnp.mean(value) for name, value in terms.items()}
        new_state = state.replace(step=state.step + 1, params=params, opt_state={'ae': opt_state})
        return new_state, jax.lax.pmean(metrics, base.DATA_AXIS)

    def eval_step(self, state, batch, rng):
        del rng
        return base.masked_sums(self.per_example(state.params, batch['image']), batch['mask'])

    def reconstruct(self, state, images, rng, labels=None):
        del rng, labels  # Deterministic, unconditional.
        return jax.nn.sigmoid(self.logits(state.params, base.images_to_unit(images)))


def build(config, info) -> base.ModelDef:
    """The autoencoder `ModelDef` for `config` on a dataset described by `info`."""
    model_config = config.model
    width, kernel_size = model_config.width, model_config.kernel_size
    wrap = base.compute_dtype_wrapper(config)
    model = Autoencoder(
        encoder=wrap(
            nets.DownConvStack(
                outputs=model_config.latent_dim, width=width, kernel_size=kernel_size
            )
        ),
        decoder=wrap(
            nets.UpConvStack(
                image_shape=tuple(info.image_shape),
                width=width,
                kernel_size=kernel_size,
                use_batch_norm=False,
                output_activation='none',
            )
        ),
        tx=optim.make_optimizer(config.optim, config.lr, config.train.num_steps),
        latent_dim=model_config.latent_dim,
        loss=model_config.loss,
    )
    image_range = (0.0, 1.0)
    return base.ModelDef(
        init=model.init,
        train_step=model.train_step,
        eval_step=model.eval_step,
        generate=None,
        reconstruct=model.reconstruct,
        image_range=image_range,
        summary_keys=('loss', 'psnr'),
        protocol={
            'metric_units': 'loss per image; mse and psnr (10 log10(1 / mse) dB) of the '
            'reconstructions in [0, 1], means over images'
        },
        sample_grids=base.standard_grids(None, model.reconstruct, 0, image_range),
    )


FAMILY = base.Family(
    name='autoencoder', defaults=defaults, build=build, rules=RULES, validate=validate
)
