"""GAN with the min-max objective (Goodfellow et al. 2014) on DCGAN nets.

D maximises E[log D(x)] + E[log(1 - D(G(z)))]; G minimises E[log(1 - D(G(z)))]
(`model.gan_loss = 'minimax'`) or maximises E[log D(G(z))] ('non_saturating').
One step updates D on a batch, then G against the updated D, reusing the generator's
forward pass for both (as the reference DCGAN implementations do).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gen_models import losses, nets, optim
from gen_models.models import base


def build(config, info) -> base.ModelDef:
    """The GAN `ModelDef` for `config` on a dataset described by `info`."""
    model_config = config.model
    latent_dim = model_config.latent_dim

    def make_generator(axis_name=None):
        return nets.UpConvStack(
            image_shape=info.image_shape,
            width=model_config.width,
            kernel_size=model_config.kernel_size,
            use_batch_norm=True,
            output_activation='tanh',
            axis_name=axis_name,
        )

    generator_init, generator = make_generator(), make_generator(base.DATA_AXIS)
    discriminator = nets.DownConvStack(
        outputs=1,
        width=model_config.width,
        kernel_size=model_config.kernel_size,
        dropout_rate=model_config.d_dropout,
    )
    tx = {
        'generator': optim.make_optimizer(config.optim, config.lr),
        'discriminator': optim.make_optimizer(
            config.optim, config.lr * config.optim.d_lr_multiplier
        ),
    }

    def init(rng, batch):
        g_rng, d_rng = jax.random.split(rng)
        z = jnp.zeros((1, latent_dim))
        g_vars = generator_init.init(g_rng, z, train=False)
        d_vars = discriminator.init(
            d_rng, base.images_to_symmetric(batch['image'][:1]), train=False
        )
        params = {'generator': g_vars['params'], 'discriminator': d_vars['params']}
        return base.TrainState(
            step=jnp.zeros((), jnp.int32),
            params=params,
            batch_stats={'generator': g_vars['batch_stats']},
            opt_state={name: tx[name].init(params[name]) for name in tx},
        )

    def discriminate(d_params, images, keys):
        """D's training logits; example i's dropout masks come from keys[i] alone, so they do
        not depend on how the batch is split over devices."""

        def one(image, key):
            logits = discriminator.apply(
                {'params': d_params}, image[None], train=True, rngs={'dropout': key}
            )
            return logits[0, 0]

        return jax.vmap(one)(images, keys)

    def train_step(state, batch, rng):
        z_rng, d_rng, g_rng = jax.random.split(rng, 3)
        real = base.images_to_symmetric(batch['image'])
        z = base.standard_normal(base.example_keys(z_rng, real.shape[0]), latent_dim)

        def forward_generator(g_params):
            fake, updates = generator.apply(
                {'params': g_params, 'batch_stats': state.batch_stats['generator']},
                z,
                train=True,
                mutable=['batch_stats'],
            )
            return fake, updates['batch_stats']

        fake, generator_vjp, g_batch_stats = jax.vjp(
            forward_generator, state.params['generator'], has_aux=True
        )

        real_keys, fake_keys = (
            base.example_keys(key, real.shape[0]) for key in jax.random.split(d_rng)
        )

        def d_loss_fn(d_params):
            real_logits = discriminate(d_params, real, real_keys)
            fake_logits = discriminate(d_params, jax.lax.stop_gradient(fake), fake_keys)
            loss = jnp.mean(losses.discriminator_loss(real_logits, fake_logits))
            return loss, (real_logits, fake_logits)

        (d_loss, (real_logits, fake_logits)), d_grads = jax.value_and_grad(d_loss_fn, has_aux=True)(
            state.params['discriminator']
        )
        d_grads = jax.lax.pmean(d_grads, base.DATA_AXIS)
        d_params, d_opt = base.apply_gradients(
            tx['discriminator'],
            d_grads,
            state.opt_state['discriminator'],
            state.params['discriminator'],
        )

        def g_loss_fn(images):
            logits = discriminate(d_params, images, base.example_keys(g_rng, images.shape[0]))
            return jnp.mean(losses.generator_loss(logits, model_config.gan_loss))

        g_loss, fake_grads = jax.value_and_grad(g_loss_fn)(fake)
        (g_grads,) = generator_vjp(fake_grads)
        g_grads = jax.lax.pmean(g_grads, base.DATA_AXIS)
        g_params, g_opt = base.apply_gradients(
            tx['generator'], g_grads, state.opt_state['generator'], state.params['generator']
        )

        metrics = {
            'd_loss': d_loss,
            'g_loss': g_loss,
            'd_real': jnp.mean(jax.nn.sigmoid(real_logits)),
            'd_fake': jnp.mean(jax.nn.sigmoid(fake_logits)),
            'd_accuracy_real': jnp.mean(real_logits > 0),
            'd_accuracy_fake': jnp.mean(fake_logits < 0),
        }
        new_state = state.replace(
            step=state.step + 1,
            params={'generator': g_params, 'discriminator': d_params},
            batch_stats={'generator': g_batch_stats},
            opt_state={'generator': g_opt, 'discriminator': d_opt},
        )
        return new_state, jax.lax.pmean(metrics, base.DATA_AXIS)

    def decode(state, z, labels=None):
        del labels  # Unconditional.
        return generator_init.apply(
            {'params': state.params['generator'], 'batch_stats': state.batch_stats['generator']},
            z,
            train=False,
        )

    def eval_step(state, batch, rng):
        real = base.images_to_symmetric(batch['image'])
        fake = decode(
            state, base.standard_normal(base.example_keys(rng, real.shape[0]), latent_dim)
        )
        d_vars = {'params': state.params['discriminator']}
        real_logits = discriminator.apply(d_vars, real, train=False)[:, 0]
        fake_logits = discriminator.apply(d_vars, fake, train=False)[:, 0]
        per_example = {
            'd_loss': losses.discriminator_loss(real_logits, fake_logits),
            'g_loss': losses.generator_loss(fake_logits, model_config.gan_loss),
            'd_accuracy_real': (real_logits > 0).astype(jnp.float32),
            'd_accuracy_fake': (fake_logits < 0).astype(jnp.float32),
        }
        return base.masked_sums(per_example, batch['mask'])

    def generate(state, rng, num, labels=None):
        return decode(state, base.standard_normal(base.index_keys(rng, num), latent_dim), labels)

    return base.ModelDef(
        init=init,
        train_step=train_step,
        eval_step=eval_step,
        generate=generate,
        decode=decode,
        latent_dim=latent_dim,
        image_range=(-1.0, 1.0),
    )
