"""VAE-GAN (Larsen et al. 2016): a VAE whose reconstruction error is measured in the feature
space of a GAN discriminator, with the decoder shared as the GAN's generator.

Encoder q(z|x) (DCGAN down-sampling stack), decoder Dec(z) in [-1, 1] (up-sampling stack,
tanh), discriminator Dis (the DCGAN discriminator). With x~ = Dec(z), z ~ q(z|x), and
x_p = Dec(z_p), z_p ~ N(0, I), the losses of Algorithm 1 are, per example:
- L_prior = KL(q(z|x) || N(0, I));
- L_llike = -log N(Dis_l(x); Dis_l(x~), I), the Gaussian log-likelihood of x in the features
  of Dis's l-th layer (here the output of its last convolution, before the activation),
  Dis_l(x) computed without dropout;
- L_GAN = -(log Dis(x) + log(1 - Dis(x~)) + log(1 - Dis(x_p))), Dis's cross-entropy.
Updates, all from the gradients at the current parameters, each player with its own optax
optimiser: the encoder minimises beta * L_prior + L_llike; the decoder gamma * L_llike plus its
GAN term on x~ and x_p (`model.gan_loss` 'minimax': log(1 - Dis), i.e. -L_GAN as in the paper;
'non_saturating': -log Dis); the discriminator L_GAN, at lr * `optim.d_lr_multiplier`.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import traverse_util

from gen_models import losses, nets, optim
from gen_models.models import base

PLAYERS = ('encoder', 'decoder', 'discriminator')


def build(config, info) -> base.ModelDef:
    """The VAE-GAN `ModelDef` for `config` on a dataset described by `info`."""
    model_config = config.model
    latent_dim = model_config.latent_dim
    width, kernel_size = model_config.width, model_config.kernel_size
    encoder = nets.DownConvStack(outputs=2 * latent_dim, width=width, kernel_size=kernel_size)
    decoder = nets.UpConvStack(
        image_shape=tuple(info.image_shape),
        width=width,
        kernel_size=kernel_size,
        use_batch_norm=False,
        output_activation='tanh',
    )
    discriminator = nets.DownConvStack(
        outputs=1, width=width, kernel_size=kernel_size, dropout_rate=model_config.d_dropout
    )
    num_steps = config.train.num_steps
    tx = {
        'encoder': optim.make_optimizer(config.optim, config.lr, num_steps),
        'decoder': optim.make_optimizer(config.optim, config.lr, num_steps),
        'discriminator': optim.make_optimizer(
            config.optim, config.lr * config.optim.d_lr_multiplier, num_steps
        ),
    }

    def init(rng, batch):
        e_rng, g_rng, d_rng = jax.random.split(rng, 3)
        x = base.images_to_symmetric(batch['image'][:1])
        params = {
            'encoder': encoder.init(e_rng, x, train=False)['params'],
            'decoder': decoder.init(g_rng, jnp.zeros((1, latent_dim)), train=False)['params'],
            'discriminator': discriminator.init(d_rng, x, train=False)['params'],
        }
        return base.TrainState(
            step=jnp.zeros((), jnp.int32),
            params=params,
            batch_stats={},
            opt_state={name: tx[name].init(params[name]) for name in PLAYERS},
        )

    def encode(params, x):
        stats = encoder.apply({'params': params['encoder']}, x, train=False)
        return jnp.split(stats, 2, axis=-1)

    def decode_with(params, z):
        return decoder.apply({'params': params['decoder']}, z, train=False)

    def features(d_params, images):
        """Dis_l: the output of the discriminator's last convolution, without dropout."""
        _, captured = discriminator.apply(
            {'params': d_params},
            images,
            train=False,
            capture_intermediates=lambda module, method: isinstance(module, nn.Conv),
        )
        return list(traverse_util.flatten_dict(captured['intermediates']).values())[-1][0]

    def feature_nll(d_params, images, real_features):
        """L_llike per example: -log N(Dis_l(x); Dis_l(images), I)."""
        zero = jnp.zeros(())
        return -losses.gaussian_log_likelihood(features(d_params, images), zero, real_features)

    def discriminate(d_params, images, keys):
        """Dis's training logits; example i's dropout masks come from keys[i] alone."""

        def one(image, key):
            logits = discriminator.apply(
                {'params': d_params}, image[None], train=True, rngs={'dropout': key}
            )
            return logits[0, 0]

        return jax.vmap(one)(images, keys)

    def generator_terms(recon_logits, prior_logits):
        kind = model_config.gan_loss
        return losses.generator_loss(recon_logits, kind) + losses.generator_loss(prior_logits, kind)

    def discriminator_terms(real_logits, recon_logits, prior_logits):
        """L_GAN per example: the real/reconstruction pair plus -log(1 - Dis(x_p))."""
        return losses.discriminator_loss(
            real_logits, recon_logits, model_config.gan_loss
        ) + jax.nn.softplus(prior_logits)

    def recon_mse(recon, x):
        """Mean squared error per pixel, in [0, 1] units."""
        return jnp.mean(((recon - x) / 2) ** 2, axis=(1, 2, 3))

    def train_step(state, batch, rng):
        eps_rng, prior_rng, d_rng = jax.random.split(rng, 3)
        x = base.images_to_symmetric(batch['image'])
        num = x.shape[0]
        eps = base.standard_normal(base.example_keys(eps_rng, num), latent_dim)
        z_prior = base.standard_normal(base.example_keys(prior_rng, num), latent_dim)
        real_keys, recon_keys, prior_keys = (
            base.example_keys(key, num) for key in jax.random.split(d_rng, 3)
        )
        d_params = state.params['discriminator']
        real_features = features(d_params, x)

        def forward(vae_params):
            mean, log_var = encode(vae_params, x)
            recon = decode_with(vae_params, mean + jnp.exp(0.5 * log_var) * eps)
            prior_images = decode_with(vae_params, z_prior)
            kl = losses.kl_to_standard_normal(mean, log_var)
            llike = feature_nll(d_params, recon, real_features)
            g_loss = generator_terms(
                discriminate(d_params, recon, recon_keys),
                discriminate(d_params, prior_images, prior_keys),
            )
            encoder_loss = jnp.mean(model_config.beta * kl + llike)
            decoder_loss = jnp.mean(model_config.vaegan_gamma * llike + g_loss)
            aux = {'kl': kl, 'llike': llike, 'g_loss': g_loss, 'recon_mse': recon_mse(recon, x)}
            return (encoder_loss, decoder_loss), (aux, recon, prior_images)

        vae_params = {name: state.params[name] for name in ('encoder', 'decoder')}
        _, backward, (terms, recon, prior_images) = jax.vjp(forward, vae_params, has_aux=True)
        (encoder_grads,) = backward((jnp.ones(()), jnp.zeros(())))
        (decoder_grads,) = backward((jnp.zeros(()), jnp.ones(())))

        def d_loss_fn(d_params):
            real_logits = discriminate(d_params, x, real_keys)
            recon_logits = discriminate(d_params, jax.lax.stop_gradient(recon), recon_keys)
            prior_logits = discriminate(d_params, jax.lax.stop_gradient(prior_images), prior_keys)
            loss = jnp.mean(discriminator_terms(real_logits, recon_logits, prior_logits))
            return loss, (real_logits, recon_logits, prior_logits)

        (d_loss, logits), d_grads = jax.value_and_grad(d_loss_fn, has_aux=True)(d_params)
        grads = {
            'encoder': encoder_grads['encoder'],
            'decoder': decoder_grads['decoder'],
            'discriminator': d_grads,
        }
        grads = jax.lax.pmean(grads, base.DATA_AXIS)
        updated = {
            name: base.apply_gradients(
                tx[name], grads[name], state.opt_state[name], state.params[name]
            )
            for name in PLAYERS
        }
        real_logits, recon_logits, prior_logits = logits
        metrics = {
            **{name: jnp.mean(value) for name, value in terms.items()},
            'd_loss': d_loss,
            'd_real': jnp.mean(jax.nn.sigmoid(real_logits)),
            'd_recon': jnp.mean(jax.nn.sigmoid(recon_logits)),
            'd_prior': jnp.mean(jax.nn.sigmoid(prior_logits)),
        }
        new_state = state.replace(
            step=state.step + 1,
            params={name: updated[name][0] for name in PLAYERS},
            opt_state={name: updated[name][1] for name in PLAYERS},
        )
        return new_state, jax.lax.pmean(metrics, base.DATA_AXIS)

    def eval_step(state, batch, rng):
        eps_rng, prior_rng = jax.random.split(rng)
        params = state.params
        x = base.images_to_symmetric(batch['image'])
        num = x.shape[0]
        mean, log_var = encode(params, x)
        eps = base.standard_normal(base.example_keys(eps_rng, num), latent_dim)
        recon = decode_with(params, mean + jnp.exp(0.5 * log_var) * eps)
        prior_images = decode_with(
            params, base.standard_normal(base.example_keys(prior_rng, num), latent_dim)
        )
        d_vars = {'params': params['discriminator']}
        real_logits, recon_logits, prior_logits = (
            discriminator.apply(d_vars, images, train=False)[:, 0]
            for images in (x, recon, prior_images)
        )
        per_example = {
            'kl': losses.kl_to_standard_normal(mean, log_var),
            'llike': feature_nll(d_vars['params'], recon, features(d_vars['params'], x)),
            'g_loss': generator_terms(recon_logits, prior_logits),
            'd_loss': discriminator_terms(real_logits, recon_logits, prior_logits),
            'recon_mse': recon_mse(recon, x),
        }
        return base.masked_sums(per_example, batch['mask'])

    def decode(state, z, labels=None):
        del labels  # Unconditional.
        return decode_with(state.params, z)

    def generate(state, rng, num, labels=None):
        return decode(state, base.standard_normal(base.index_keys(rng, num), latent_dim), labels)

    def reconstruct(state, images, rng, labels=None):
        del rng, labels  # Decodes the posterior mean; unconditional.
        mean, _ = encode(state.params, base.images_to_symmetric(images))
        return decode_with(state.params, mean)

    return base.ModelDef(
        init=init,
        train_step=train_step,
        eval_step=eval_step,
        generate=generate,
        reconstruct=reconstruct,
        decode=decode,
        latent_dim=latent_dim,
        image_range=(-1.0, 1.0),
    )
