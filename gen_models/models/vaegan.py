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

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax import traverse_util

from gen_models import config as cfg
from gen_models import losses, nets, optim
from gen_models.models import base
from gen_models.models.vae import reparameterize

PLAYERS = ('encoder', 'decoder', 'discriminator')


def defaults() -> ml_collections.ConfigDict:
    """`config.model` of a VAE-GAN: DCGAN-style encoder, decoder and discriminator."""
    model = ml_collections.ConfigDict()
    model.latent_dim = 16  # size of z
    model.width = 32  # channels of the widest-resolution stage of every net
    model.kernel_size = 4  # kernel side of every conv layer
    model.d_dropout = 0.3  # dropout rate after each discriminator conv layer
    model.gan_loss = 'non_saturating'  # the decoder's GAN term: 'minimax' (log(1 - Dis), the
    # paper's -L_GAN) | 'non_saturating' (-log Dis)
    model.beta = 1.0  # weight of the KL term in the encoder's loss
    model.vaegan_gamma = 1.0  # weight of the feature-space likelihood in the decoder's loss,
    # against the GAN term (Larsen et al. 2016)
    return model


RULES: dict[str, cfg.Rule] = {
    'model.latent_dim': cfg.at_least(1),
    'model.width': cfg.at_least(1),
    'model.kernel_size': cfg.at_least(1),
    'model.d_dropout': cfg.unit_interval(),
    'model.gan_loss': cfg.choice(*losses.GENERATOR_LOSSES),
    'model.beta': cfg.at_least(0),
    'model.vaegan_gamma': cfg.at_least(0),
}


def validate(config: ml_collections.ConfigDict, info: Any, num_devices: int) -> None:
    del num_devices
    if info is not None:
        base.check_conv_images(config, info)


def recon_mse(recon: jax.Array, x: jax.Array) -> jax.Array:
    """Mean squared error per pixel of images in [-1, 1], in [0, 1] units."""
    return jnp.mean(((recon - x) / 2) ** 2, axis=(1, 2, 3))


@dataclasses.dataclass(frozen=True, eq=False)
class VAEGAN:
    """One VAE-GAN's networks and settings; its methods are the model's pure functions."""

    encoder: base.Net
    decoder: base.Net
    discriminator: base.Net
    tx: dict[str, optax.GradientTransformation]
    latent_dim: int
    kind: str  # model.gan_loss
    beta: Any  # weights: floats, or tracers inside compiled programs
    gamma: Any

    def init(self, rng, batch) -> base.TrainState:
        e_rng, g_rng, d_rng = jax.random.split(rng, 3)
        x = base.images_to_symmetric(batch['image'][:1])
        z = jnp.zeros((1, self.latent_dim))
        params = {
            'encoder': self.encoder.init(e_rng, x, train=False)['params'],
            'decoder': self.decoder.init(g_rng, z, train=False)['params'],
            'discriminator': self.discriminator.init(d_rng, x, train=False)['params'],
        }
        return base.TrainState(
            step=jnp.zeros((), jnp.int32),
            params=params,
            batch_stats={},
            opt_state={name: self.tx[name].init(params[name]) for name in PLAYERS},
        )

    def encode(self, params, x):
        stats = self.encoder.apply({'params': params['encoder']}, x, train=False)
        return jnp.split(stats, 2, axis=-1)

    def decode_with(self, params, z):
        return self.decoder.apply({'params': params['decoder']}, z, train=False)

    def features(self, d_params, images):
        """Dis_l: the output of the discriminator's last convolution, without dropout."""
        _, captured = self.discriminator.apply(
            {'params': d_params},
            images,
            train=False,
            capture_intermediates=lambda module, method: isinstance(module, nn.Conv),
        )
        return list(traverse_util.flatten_dict(captured['intermediates']).values())[-1][0]

    def feature_nll(self, d_params, images, real_features):
        """L_llike per example: -log N(Dis_l(x); Dis_l(images), I)."""
        zero = jnp.zeros(())
        return -losses.gaussian_log_likelihood(self.features(d_params, images), zero, real_features)

    def discriminate(self, d_params, images, keys):
        """Dis's training logits; example i's dropout masks come from keys[i] alone."""

        def one(image, key):
            logits = self.discriminator.apply(
                {'params': d_params}, image[None], train=True, rngs={'dropout': key}
            )
            return logits[0, 0]

        return jax.vmap(one)(images, keys)

    def generator_terms(self, recon_logits, prior_logits):
        return losses.generator_loss(recon_logits, self.kind) + losses.generator_loss(
            prior_logits, self.kind
        )

    def discriminator_terms(self, real_logits, recon_logits, prior_logits):
        """L_GAN per example: the real/reconstruction pair plus -log(1 - Dis(x_p))."""
        return losses.discriminator_loss(real_logits, recon_logits, self.kind) + jax.nn.softplus(
            prior_logits
        )

    def vae_losses(self, vae_params, d_params, x, eps, z_prior, keys, real_features):
        """((encoder loss, decoder loss), (per-example terms, reconstructions, prior images))."""
        mean, log_var = self.encode(vae_params, x)
        recon = self.decode_with(vae_params, reparameterize(mean, log_var, eps))
        prior_images = self.decode_with(vae_params, z_prior)
        kl = losses.kl_to_standard_normal(mean, log_var)
        llike = self.feature_nll(d_params, recon, real_features)
        g_loss = self.generator_terms(
            self.discriminate(d_params, recon, keys['recon']),
            self.discriminate(d_params, prior_images, keys['prior']),
        )
        encoder_loss = jnp.mean(self.beta * kl + llike)
        decoder_loss = jnp.mean(self.gamma * llike + g_loss)
        aux = {'kl': kl, 'llike': llike, 'g_loss': g_loss, 'recon_mse': recon_mse(recon, x)}
        return (encoder_loss, decoder_loss), (aux, recon, prior_images)

    def d_loss(self, d_params, x, recon, prior_images, keys):
        real_logits = self.discriminate(d_params, x, keys['real'])
        recon_logits = self.discriminate(d_params, jax.lax.stop_gradient(recon), keys['recon'])
        prior_logits = self.discriminate(
            d_params, jax.lax.stop_gradient(prior_images), keys['prior']
        )
        loss = jnp.mean(self.discriminator_terms(real_logits, recon_logits, prior_logits))
        return loss, (real_logits, recon_logits, prior_logits)

    def train_step(self, state, batch, rng):
        eps_rng, prior_rng, d_rng = jax.random.split(rng, 3)
        x = base.images_to_symmetric(batch['image'])
        num = x.shape[0]
        eps = base.standard_normal(base.example_keys(eps_rng, num), self.latent_dim)
        z_prior = base.standard_normal(base.example_keys(prior_rng, num), self.latent_dim)
        keys = dict(
            zip(
                ('real', 'recon', 'prior'),
                (base.example_keys(key, num) for key in jax.random.split(d_rng, 3)),
            )
        )
        d_params = state.params['discriminator']
        real_features = self.features(d_params, x)
        vae_params = {name: state.params[name] for name in ('encoder', 'decoder')}
        _, backward, (terms, recon, prior_images) = jax.vjp(
            lambda p: self.vae_losses(p, d_params, x, eps, z_prior, keys, real_features),
            vae_params,
            has_aux=True,
        )
        (encoder_grads,) = backward((jnp.ones(()), jnp.zeros(())))
        (decoder_grads,) = backward((jnp.zeros(()), jnp.ones(())))
        (d_loss, logits), d_grads = jax.value_and_grad(self.d_loss, has_aux=True)(
            d_params, x, recon, prior_images, keys
        )
        grads = {
            'encoder': encoder_grads['encoder'],
            'decoder': decoder_grads['decoder'],
            'discriminator': d_grads,
        }
        grads = jax.lax.pmean(grads, base.DATA_AXIS)
        updated = {
            name: base.apply_gradients(
                self.tx[name], grads[name], state.opt_state[name], state.params[name]
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

    def eval_step(self, state, batch, rng):
        eps_rng, prior_rng = jax.random.split(rng)
        params = state.params
        x = base.images_to_symmetric(batch['image'])
        num = x.shape[0]
        mean, log_var = self.encode(params, x)
        eps = base.standard_normal(base.example_keys(eps_rng, num), self.latent_dim)
        recon = self.decode_with(params, reparameterize(mean, log_var, eps))
        prior_images = self.decode_with(
            params, base.standard_normal(base.example_keys(prior_rng, num), self.latent_dim)
        )
        d_vars = {'params': params['discriminator']}
        real_logits, recon_logits, prior_logits = (
            self.discriminator.apply(d_vars, images, train=False)[:, 0]
            for images in (x, recon, prior_images)
        )
        per_example = {
            'kl': losses.kl_to_standard_normal(mean, log_var),
            'llike': self.feature_nll(d_vars['params'], recon, self.features(d_vars['params'], x)),
            'g_loss': self.generator_terms(recon_logits, prior_logits),
            'd_loss': self.discriminator_terms(real_logits, recon_logits, prior_logits),
            'recon_mse': recon_mse(recon, x),
        }
        return base.masked_sums(per_example, batch['mask'])

    def decode(self, state, z, labels=None):
        del labels  # Unconditional.
        return self.decode_with(state.params, z)

    def generate(self, state, rng, num, labels=None):
        z = base.standard_normal(base.index_keys(rng, num), self.latent_dim)
        return self.decode(state, z, labels)

    def reconstruct(self, state, images, rng, labels=None):
        del rng, labels  # Decodes the posterior mean; unconditional.
        mean, _ = self.encode(state.params, base.images_to_symmetric(images))
        return self.decode_with(state.params, mean)


def build(config, info) -> base.ModelDef:
    """The VAE-GAN `ModelDef` for `config` on a dataset described by `info`."""
    model_config = config.model
    width, kernel_size = model_config.width, model_config.kernel_size
    num_steps = config.train.num_steps
    wrap = base.compute_dtype_wrapper(config)
    model = VAEGAN(
        encoder=wrap(
            nets.DownConvStack(
                outputs=2 * model_config.latent_dim, width=width, kernel_size=kernel_size
            )
        ),
        decoder=wrap(
            nets.UpConvStack(
                image_shape=tuple(info.image_shape),
                width=width,
                kernel_size=kernel_size,
                use_batch_norm=False,
                output_activation='tanh',
            )
        ),
        discriminator=wrap(
            nets.DownConvStack(
                outputs=1, width=width, kernel_size=kernel_size, dropout_rate=model_config.d_dropout
            )
        ),
        tx={
            'encoder': optim.make_optimizer(config.optim, config.lr, num_steps),
            'decoder': optim.make_optimizer(config.optim, config.lr, num_steps),
            'discriminator': optim.make_optimizer(
                config.optim, config.lr * config.optim.d_lr_multiplier, num_steps
            ),
        },
        latent_dim=model_config.latent_dim,
        kind=model_config.gan_loss,
        beta=model_config.beta,
        gamma=model_config.vaegan_gamma,
    )
    image_range = (-1.0, 1.0)
    return base.ModelDef(
        init=model.init,
        train_step=model.train_step,
        eval_step=model.eval_step,
        generate=model.generate,
        reconstruct=model.reconstruct,
        decode=model.decode,
        latent_dim=model.latent_dim,
        image_range=image_range,
        summary_keys=('d_loss', 'g_loss'),
        sample_grids=base.standard_grids(model.generate, model.reconstruct, 0, image_range),
    )


FAMILY = base.Family(
    name='vaegan',
    defaults=defaults,
    build=build,
    rules=RULES,
    validate=validate,
    traced=('model.beta', 'model.vaegan_gamma'),
    reads=('optim.d_lr_multiplier',),
)
