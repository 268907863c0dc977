"""Variational autoencoders: the ELBO (Kingma & Welling 2013) and its relatives as switches.

Gaussian encoder q(z|x) with the reparameterisation trick, analytic KL to N(0, I), and a
decoder likelihood p(x|z) (`model.likelihood`):
- 'bernoulli': on logits (binary or dynamically binarised pixels);
- 'gaussian': sigmoid mean, fixed or learned scalar std, or a std per pixel from the decoder
  (`model.decoder_std_per_pixel`, as Kingma & Welling's Frey Face decoder);
- 'logistic': the discretised logistic of 8-bit pixels (Kingma et al. 2016, Salimans et al.
  2017): sigmoid mean per pixel from the decoder, log scale a per-channel parameter, learned
  with `model.learn_decoder_std` (IAF learns one shared scale; a per-pixel scale would double
  the decoder's outputs for little gain at these sizes), starting at `model.decoder_std`.

Objective: -(E[log p(x|z)] - w * KL) with w = `model.beta` (beta-VAE), ramped linearly from
0 over `model.kl_warmup_steps`. With `model.num_importance_samples` k > 1 it is the k-sample
importance-weighted bound of Burda et al. (2015), log (1/k) sum_s p(x|z_s) (p(z_s) /
q(z_s|x))^w. With `model.conditional` (Sohn et al. 2015) encoder and decoder see the one-hot
class: q(z|x, y), p(x|z, y).

Evaluation reports the ELBO (w = 1) in nats per image, as bits per dimension where the
likelihood is discrete (logistic, or Bernoulli on binarised pixels), and the training bound
as 'iwae_k' when k > 1.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gen_models import losses, nets, optim
from gen_models.metrics import likelihood as likelihood_metrics
from gen_models.models import base


class Decoder(nn.Module):
    """A decoder net plus the log scale of p(x|z) (Gaussian std, logistic scale).

    With `per_pixel_log_std` the net outputs twice the image's channels, the second half
    being each pixel's log scale relative to `initial_log_std` (Kingma & Welling's Gaussian
    MLP decoder); otherwise the scale is a parameter (learned or fixed) of `log_std_shape`.
    """

    net: nn.Module
    initial_log_std: float
    learn_log_std: bool
    log_std_shape: tuple[int, ...] = ()
    per_pixel_log_std: bool = False

    @nn.compact
    def __call__(self, z, *, train: bool):
        out = self.net(z, train=train)
        if self.per_pixel_log_std:
            out, log_std = jnp.split(out, 2, axis=-1)
            return out, log_std + self.initial_log_std
        if self.learn_log_std:
            log_std = self.param(
                'log_std', nn.initializers.constant(self.initial_log_std), self.log_std_shape
            )
        else:
            log_std = jnp.full(self.log_std_shape, self.initial_log_std)
        return out, log_std


def make_nets(model_config, image_shape) -> tuple[nn.Module, nn.Module]:
    """Encoder (image -> 2 * latent) and decoder net (latent -> image-shaped output, with
    twice the channels when the decoder also outputs a log scale per pixel)."""
    latent_dim = model_config.latent_dim
    if model_config.decoder_std_per_pixel:
        image_shape = (*image_shape[:-1], 2 * image_shape[-1])
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


def with_condition(inputs: jax.Array, one_hot: jax.Array | None) -> jax.Array:
    """`inputs` with one-hot labels appended (Sohn et al. 2015): to images (B, H, W, C) as
    constant channels, to vectors (B, D) (z, or flattened images for MLPs) as entries."""
    if one_hot is None:
        return inputs
    if inputs.ndim == 4:
        channels = jnp.broadcast_to(
            one_hot[:, None, None, :], (*inputs.shape[:3], one_hot.shape[-1])
        )
        return jnp.concatenate([inputs, channels], axis=-1)
    return jnp.concatenate([inputs, one_hot], axis=-1)


def is_discrete(config) -> bool:
    """Whether p(x|z) is a probability mass on the observed pixels (bits/dim make sense)."""
    likelihood = config.model.likelihood
    return likelihood == 'logistic' or (likelihood == 'bernoulli' and config.dataset.binarize)


def log_mean_exp(values: jax.Array) -> jax.Array:
    """log (1/k) sum_s exp(values[..., s])."""
    return jax.nn.logsumexp(values, axis=-1) - math.log(values.shape[-1])


def build(config, info) -> base.ModelDef:
    """The VAE `ModelDef` for `config` on a dataset described by `info`."""
    model_config = config.model
    latent_dim = model_config.latent_dim
    likelihood = model_config.likelihood
    num_importance = model_config.num_importance_samples
    num_classes = info.num_classes if model_config.conditional else 0
    num_dims = int(np.prod(info.image_shape))
    discrete = is_discrete(config)
    encoder, decoder_net = make_nets(model_config, info.image_shape)
    decoder = Decoder(
        net=decoder_net,
        initial_log_std=float(np.log(model_config.decoder_std)),
        learn_log_std=likelihood != 'bernoulli' and model_config.learn_decoder_std,
        log_std_shape=(info.image_shape[-1],) if likelihood == 'logistic' else (),
        per_pixel_log_std=model_config.decoder_std_per_pixel,
    )
    tx = optim.make_optimizer(config.optim, config.lr, config.train.num_steps)

    def one_hot(labels):
        if not num_classes:
            return None
        if labels is None:
            raise ValueError('a class-conditional VAE needs labels (int32, one per image)')
        return jax.nn.one_hot(labels, num_classes)

    def init(rng, batch):
        e_rng, d_rng = jax.random.split(rng)
        x = base.images_to_unit(batch['image'][:1])
        condition = one_hot(jnp.zeros((1,), jnp.int32))
        z = with_condition(jnp.zeros((1, latent_dim)), condition)
        params = {
            'encoder': encoder.init(e_rng, with_condition(x, condition), train=False)['params'],
            'decoder': decoder.init(d_rng, z, train=False)['params'],
        }
        return base.TrainState(
            step=jnp.zeros((), jnp.int32),
            params=params,
            batch_stats={},
            opt_state={'vae': tx.init(params)},
        )

    def observe(batch, rng):
        """(x, labels, one latent key per example): x in [0, 1], with dynamic binarisation a
        Bernoulli draw per pixel; labels None for unconditional models."""
        bin_rng, z_rng = jax.random.split(rng)
        num = batch['image'].shape[0]
        x = base.images_to_unit(batch['image'])
        if config.dataset.binarize:
            keys = base.example_keys(bin_rng, num)
            uniforms = jax.vmap(lambda k: jax.random.uniform(k, x.shape[1:]))(keys)
            x = (uniforms < x).astype(jnp.float32)
        labels = batch['label'] if num_classes else None
        return x, labels, base.example_keys(z_rng, num)

    def encode(params, x, labels):
        inputs = with_condition(x, one_hot(labels))
        stats = encoder.apply({'params': params['encoder']}, inputs, train=False)
        return jnp.split(stats, 2, axis=-1)

    def decode(params, z, labels):
        z = with_condition(z, one_hot(labels))
        return decoder.apply({'params': params['decoder']}, z, train=False)

    def log_likelihood(decoded, x):
        out, log_std = decoded
        if likelihood == 'bernoulli':
            return losses.bernoulli_log_likelihood(out, x)
        if likelihood == 'gaussian':
            return losses.gaussian_log_likelihood(jax.nn.sigmoid(out), log_std, x)
        return losses.discretized_logistic_log_likelihood(jax.nn.sigmoid(out), log_std, x)

    def mean_image(decoded):
        return jax.nn.sigmoid(decoded[0])

    def elbo_terms(params, x, labels, keys):
        """One-sample ELBO with the analytic KL, per example."""
        mean, log_var = encode(params, x, labels)
        eps = base.standard_normal(keys, latent_dim)
        z = mean + jnp.exp(0.5 * log_var) * eps
        log_lik = log_likelihood(decode(params, z, labels), x)
        kl = losses.kl_to_standard_normal(mean, log_var)
        return {'log_likelihood': log_lik, 'kl': kl, 'elbo': log_lik - kl}

    def sample_terms(params, x, labels, keys, offset, num):
        """(log p(x|z_s), log p(z_s) - log q(z_s|x)), each (B, num), for samples
        s = offset .. offset + num - 1 of example i, drawn from fold_in(keys[i], s)."""
        mean, log_var = encode(params, x, labels)

        def per_example(key, x_one, label_one, mean_one, log_var_one):
            eps = base.standard_normal(base.index_keys(key, num, offset), latent_dim)
            z, log_ratio = likelihood_metrics.latent_log_ratio(mean_one, log_var_one, eps)
            repeated = None if label_one is None else jnp.broadcast_to(label_one, (num,))
            return log_likelihood(decode(params, z, repeated), x_one[None]), log_ratio

        return jax.vmap(per_example)(keys, x, labels, mean, log_var)

    def importance_terms(params, x, labels, keys, kl_weight):
        """The k-sample bound with the prior ratio weighted by `kl_weight` (the objective) and
        without (the reported 'iwae_k'), plus Monte Carlo ELBO terms of the same samples."""
        log_lik, log_ratio = sample_terms(params, x, labels, keys, 0, num_importance)
        kl = -jnp.mean(log_ratio, axis=-1)
        log_lik_mean = jnp.mean(log_lik, axis=-1)
        terms = {'log_likelihood': log_lik_mean, 'kl': kl, 'elbo': log_lik_mean - kl}
        terms['iwae_k'] = log_mean_exp(log_lik + log_ratio)
        return log_mean_exp(log_lik + kl_weight * log_ratio), terms

    def with_bits(terms):
        if discrete:
            terms['bits_per_dim'] = losses.bits_per_dim(terms['elbo'], num_dims)
        return terms

    def train_step(state, batch, rng):
        x, labels, keys = observe(batch, rng)
        kl_weight = losses.kl_weight(state.step, model_config.beta, model_config.kl_warmup_steps)

        def loss_fn(params):
            if num_importance == 1:
                terms = elbo_terms(params, x, labels, keys)
                objective = terms['log_likelihood'] - kl_weight * terms['kl']
            else:
                objective, terms = importance_terms(params, x, labels, keys, kl_weight)
            return -jnp.mean(objective), terms

        (loss, terms), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        grads = jax.lax.pmean(grads, base.DATA_AXIS)
        params, opt_state = base.apply_gradients(tx, grads, state.opt_state['vae'], state.params)
        metrics = {'loss': loss, **{name: jnp.mean(v) for name, v in with_bits(terms).items()}}
        if model_config.kl_warmup_steps:
            metrics['kl_weight'] = kl_weight
        return (
            state.replace(step=state.step + 1, params=params, opt_state={'vae': opt_state}),
            jax.lax.pmean(metrics, base.DATA_AXIS),
        )

    def eval_step(state, batch, rng):
        x, labels, keys = observe(batch, rng)
        terms = elbo_terms(state.params, x, labels, keys)
        if num_importance > 1:
            _, importance = importance_terms(state.params, x, labels, keys, 1.0)
            terms['iwae_k'] = importance['iwae_k']
        return base.masked_sums(with_bits(terms), batch['mask'])

    def log_weights(state, batch, rng, offset, num):
        x, labels, keys = observe(batch, rng)
        log_lik, log_ratio = sample_terms(state.params, x, labels, keys, offset, num)
        return log_lik + log_ratio

    def decode_latents(state, z, labels=None):
        return mean_image(decode(state.params, z, labels))

    def generate(state, rng, num, labels=None):
        keys = base.index_keys(rng, num)
        if num_classes and labels is None:  # A class per image, drawn from its own key.
            labels = jax.vmap(
                lambda k: jax.random.randint(jax.random.fold_in(k, 1), (), 0, num_classes)
            )(keys)
        return decode_latents(state, base.standard_normal(keys, latent_dim), labels)

    def reconstruct(state, images, rng, labels=None):
        del rng  # Decodes the posterior mean: deterministic reconstructions.
        mean, _ = encode(state.params, base.images_to_unit(images), labels)
        return mean_image(decode(state.params, mean, labels))

    return base.ModelDef(
        init=init,
        train_step=train_step,
        eval_step=eval_step,
        generate=generate,
        reconstruct=reconstruct,
        log_weights=log_weights,
        decode=decode_latents,
        latent_dim=latent_dim,
        num_classes=num_classes,
        image_range=(0.0, 1.0),
    )
