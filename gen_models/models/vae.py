"""Variational autoencoder trained on the ELBO (Kingma & Welling 2013).

Gaussian encoder q(z|x) with the reparameterisation trick, decoder likelihood p(x|z)
(Bernoulli on logits, or Gaussian with a sigmoid mean and fixed or learned scale),
analytic KL to N(0, I). The training loss is -(E[log p(x|z)] - beta * KL); evaluation
reports the ELBO (beta = 1) in nats per image.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gen_models import losses, nets, optim
from gen_models.metrics import likelihood as likelihood_metrics
from gen_models.models import base


class Decoder(nn.Module):
    """A decoder net plus, for Gaussian likelihoods, the log scale of p(x|z)."""

    net: nn.Module
    initial_log_std: float
    learn_log_std: bool

    @nn.compact
    def __call__(self, z, *, train: bool):
        out = self.net(z, train=train)
        if self.learn_log_std:
            log_std = self.param('log_std', nn.initializers.constant(self.initial_log_std), ())
        else:
            log_std = jnp.asarray(self.initial_log_std)
        return out, log_std


def make_nets(model_config, image_shape) -> tuple[nn.Module, nn.Module]:
    """Encoder (image -> 2 * latent) and decoder net (latent -> image-shaped output)."""
    latent_dim = model_config.latent_dim
    if model_config.net == 'mlp':
        return (
            nets.MLP(
                hidden=model_config.hidden,
                output_shape=(2 * latent_dim,),
                activation=model_config.activation,
            ),
            nets.MLP(
                hidden=tuple(reversed(model_config.hidden)),
                output_shape=tuple(image_shape),
                activation=model_config.activation,
            ),
        )
    return (
        nets.DownConvStack(
            outputs=2 * latent_dim, width=model_config.width, kernel_size=model_config.kernel_size
        ),
        nets.UpConvStack(
            image_shape=tuple(image_shape),
            width=model_config.width,
            kernel_size=model_config.kernel_size,
            use_batch_norm=False,
            output_activation='none',
        ),
    )


def build(config, info) -> base.ModelDef:
    """The VAE `ModelDef` for `config` on a dataset described by `info`."""
    model_config = config.model
    latent_dim = model_config.latent_dim
    likelihood = model_config.likelihood
    encoder, decoder_net = make_nets(model_config, info.image_shape)
    decoder = Decoder(
        net=decoder_net,
        initial_log_std=float(np.log(model_config.decoder_std)),
        learn_log_std=likelihood == 'gaussian' and model_config.learn_decoder_std,
    )
    tx = optim.make_optimizer(config.optim, config.lr, config.train.num_steps)

    def init(rng, batch):
        e_rng, d_rng = jax.random.split(rng)
        x = base.images_to_unit(batch['image'][:1])
        params = {
            'encoder': encoder.init(e_rng, x, train=False)['params'],
            'decoder': decoder.init(d_rng, jnp.zeros((1, latent_dim)), train=False)['params'],
        }
        return base.TrainState(
            step=jnp.zeros((), jnp.int32),
            params=params,
            batch_stats={},
            opt_state={'vae': tx.init(params)},
        )

    def observe(batch, keys):
        """Images in [0, 1]; with dynamic binarisation, a Bernoulli draw per pixel."""
        x = base.images_to_unit(batch['image'])
        if not config.dataset.binarize:
            return x
        uniforms = jax.vmap(lambda k: jax.random.uniform(k, x.shape[1:]))(keys)
        return (uniforms < x).astype(jnp.float32)

    def encode(params, x):
        stats = encoder.apply({'params': params['encoder']}, x, train=False)
        return jnp.split(stats, 2, axis=-1)

    def decode(params, z):
        return decoder.apply({'params': params['decoder']}, z, train=False)

    def log_likelihood(decoded, x):
        out, log_std = decoded
        if likelihood == 'bernoulli':
            return losses.bernoulli_log_likelihood(out, x)
        return losses.gaussian_log_likelihood(jax.nn.sigmoid(out), log_std, x)

    def mean_image(decoded):
        return jax.nn.sigmoid(decoded[0])

    def elbo_terms(params, x, keys):
        mean, log_var = encode(params, x)
        eps = base.standard_normal(keys, latent_dim)
        z = mean + jnp.exp(0.5 * log_var) * eps
        log_lik = log_likelihood(decode(params, z), x)
        kl = losses.kl_to_standard_normal(mean, log_var)
        return {'log_likelihood': log_lik, 'kl': kl, 'elbo': log_lik - kl}

    def train_step(state, batch, rng):
        bin_rng, z_rng = jax.random.split(rng)
        num = batch['image'].shape[0]
        x = observe(batch, base.example_keys(bin_rng, num))
        keys = base.example_keys(z_rng, num)

        def loss_fn(params):
            terms = elbo_terms(params, x, keys)
            loss = -jnp.mean(terms['log_likelihood'] - model_config.beta * terms['kl'])
            return loss, terms

        (loss, terms), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        grads = jax.lax.pmean(grads, base.DATA_AXIS)
        params, opt_state = base.apply_gradients(tx, grads, state.opt_state['vae'], state.params)
        metrics = {'loss': loss, **{name: jnp.mean(v) for name, v in terms.items()}}
        return (
            state.replace(step=state.step + 1, params=params, opt_state={'vae': opt_state}),
            jax.lax.pmean(metrics, base.DATA_AXIS),
        )

    def eval_step(state, batch, rng):
        bin_rng, z_rng = jax.random.split(rng)
        num = batch['image'].shape[0]
        x = observe(batch, base.example_keys(bin_rng, num))
        terms = elbo_terms(state.params, x, base.example_keys(z_rng, num))
        return base.masked_sums(terms, batch['mask'])

    def log_weights(state, batch, rng, offset, num):
        bin_rng, z_rng = jax.random.split(rng)
        size = batch['image'].shape[0]
        x = observe(batch, base.example_keys(bin_rng, size))
        mean, log_var = encode(state.params, x)

        def per_example(key, x_one, mean_one, log_var_one):
            eps = base.standard_normal(base.index_keys(key, num, offset), latent_dim)
            return likelihood_metrics.importance_log_weights(
                lambda z: log_likelihood(decode(state.params, z), x_one[None]),
                mean_one,
                log_var_one,
                eps,
            )

        return jax.vmap(per_example)(base.example_keys(z_rng, size), x, mean, log_var)

    def decode_latents(state, z, labels=None):
        del labels  # Unconditional.
        return mean_image(decode(state.params, z))

    def generate(state, rng, num, labels=None):
        return decode_latents(
            state, base.standard_normal(base.index_keys(rng, num), latent_dim), labels
        )

    def reconstruct(state, images, rng):
        del rng  # Decodes the posterior mean: deterministic reconstructions.
        mean, _ = encode(state.params, base.images_to_unit(images))
        return mean_image(decode(state.params, mean))

    return base.ModelDef(
        init=init,
        train_step=train_step,
        eval_step=eval_step,
        generate=generate,
        reconstruct=reconstruct,
        log_weights=log_weights,
        decode=decode_latents,
        latent_dim=latent_dim,
        image_range=(0.0, 1.0),
    )
