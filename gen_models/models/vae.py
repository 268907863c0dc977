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
as 'iwae_k' when k > 1. The pieces (`Decoder`, `make_nets`, `Likelihood`, `reparameterize`,
`elbo_terms`) are shared with the families built on a VAE (the hybrid).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from gen_models import config as cfg
from gen_models import losses, nets, optim
from gen_models.metrics.iwae import latent_log_ratio
from gen_models.models import base


def defaults() -> ml_collections.ConfigDict:
    """`config.model` of a VAE: a conv VAE with a Bernoulli decoder."""
    model = ml_collections.ConfigDict()
    model.net = 'conv'  # 'conv' (DCGAN-style stacks) | 'mlp'
    model.latent_dim = 16  # size of z
    model.width = 32  # conv: channels of the widest-resolution stage
    model.kernel_size = 4  # conv: kernel side of every conv layer
    model.hidden = (500,)  # mlp: hidden layer sizes of the encoder (the decoder's reversed)
    model.activation = 'relu'  # mlp: 'tanh' | 'relu' | 'softplus' | 'leaky_relu'
    model.conditional = False  # condition on the class labels: q(z|x, y), p(x|z, y)
    model.likelihood = 'bernoulli'  # p(x|z): 'bernoulli' | 'gaussian' | 'logistic'
    # (discretised logistic of 8-bit pixels, per-channel scale; eval also in bits/dim)
    model.beta = 1.0  # weight of the KL term in the loss (beta-VAE)
    model.kl_warmup_steps = 0  # the KL weight rises linearly from 0 to beta over these
    # steps; 0 = off
    model.num_importance_samples = 1  # k of the IWAE training bound (Burda et al.); 1 = ELBO
    model.decoder_std = 0.1  # gaussian: (initial) std of p(x|z); logistic: its scale
    model.learn_decoder_std = False  # gaussian/logistic: learn that std/scale
    model.decoder_std_per_pixel = False  # gaussian/logistic: the decoder outputs a log
    # std/scale per pixel (relative to decoder_std) instead of one parameter
    return model


LIKELIHOODS = losses.LIKELIHOODS
RULES: dict[str, cfg.Rule] = {
    'model.net': cfg.choice('conv', 'mlp'),
    'model.latent_dim': cfg.at_least(1),
    'model.width': cfg.at_least(1),
    'model.kernel_size': cfg.at_least(1),
    'model.hidden': cfg.layer_sizes(),
    'model.activation': cfg.choice(*nets.ACTIVATIONS),
    'model.likelihood': cfg.choice(*LIKELIHOODS),
    'model.beta': cfg.at_least(0),
    'model.kl_warmup_steps': cfg.at_least(0),
    'model.num_importance_samples': cfg.at_least(1),
    'model.decoder_std': cfg.positive(),
}


def validate(config: ml_collections.ConfigDict, info: Any, num_devices: int) -> None:
    """Combinations the rules cannot state; with `info`, what the data must provide."""
    del num_devices
    model = config.model
    if model.decoder_std_per_pixel and model.likelihood == 'bernoulli':
        raise cfg.ConfigError(
            'model.decoder_std_per_pixel', True, "False with model.likelihood='bernoulli'"
        )
    if config.dataset.binarize and model.likelihood != 'bernoulli':
        raise cfg.ConfigError('dataset.binarize', True, "only with model.likelihood='bernoulli'")
    if info is not None:
        base.check_labels(config, info)
        base.check_conv_images(config, info)


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
    """Encoder (image -> 2 * latent: mean and log variance) and decoder net (latent ->
    image-shaped output, with twice the channels when the decoder also outputs a log scale
    per pixel), of `model.net` 'conv' (the default) or 'mlp'."""
    latent_dim = model_config.latent_dim
    if model_config.get('decoder_std_per_pixel', False):
        image_shape = (*image_shape[:-1], 2 * image_shape[-1])
    if model_config.get('net', 'conv') == 'mlp':
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


def make_decoder(model_config, net: nn.Module, channels: int) -> Decoder:
    """The `Decoder` of `net` for `model.likelihood` and the `model.decoder_std*` keys."""
    likelihood = model_config.likelihood
    return Decoder(
        net=net,
        initial_log_std=float(np.log(model_config.decoder_std)),
        learn_log_std=likelihood != 'bernoulli' and model_config.learn_decoder_std,
        log_std_shape=(channels,) if likelihood == 'logistic' else (),
        per_pixel_log_std=model_config.get('decoder_std_per_pixel', False),
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


@dataclasses.dataclass(frozen=True)
class Likelihood:
    """p(x|z) of a `Decoder`'s output (out, log_scale), per example (nats per image)."""

    kind: str  # one of LIKELIHOODS

    def log_prob(self, decoded: tuple[jax.Array, jax.Array], x: jax.Array) -> jax.Array:
        out, log_std = decoded
        if self.kind == 'bernoulli':
            return losses.bernoulli_log_likelihood(out, x)
        if self.kind == 'gaussian':
            return losses.gaussian_log_likelihood(jax.nn.sigmoid(out), log_std, x)
        return losses.discretized_logistic_log_likelihood(jax.nn.sigmoid(out), log_std, x)

    @staticmethod
    def mean(decoded: tuple[jax.Array, jax.Array]) -> jax.Array:
        """The decoded mean image in [0, 1]."""
        return jax.nn.sigmoid(decoded[0])


def reparameterize(mean: jax.Array, log_var: jax.Array, eps: jax.Array) -> jax.Array:
    """z = mean + std * eps: a draw of N(mean, exp(log_var)) differentiable in both."""
    return mean + jnp.exp(0.5 * log_var) * eps


def elbo_terms(log_likelihood: jax.Array, mean: jax.Array, log_var: jax.Array) -> base.Metrics:
    """Per-example ELBO terms from log p(x|z) and q(z|x) = N(mean, exp(log_var))."""
    kl = losses.kl_to_standard_normal(mean, log_var)
    return {'log_likelihood': log_likelihood, 'kl': kl, 'elbo': log_likelihood - kl}


def is_discrete(config) -> bool:
    """Whether p(x|z) is a probability mass on the observed pixels (bits/dim make sense)."""
    likelihood = config.model.likelihood
    return likelihood == 'logistic' or (likelihood == 'bernoulli' and config.dataset.binarize)


def log_mean_exp(values: jax.Array) -> jax.Array:
    """log (1/k) sum_s exp(values[..., s])."""
    return jax.nn.logsumexp(values, axis=-1) - math.log(values.shape[-1])


@dataclasses.dataclass(frozen=True, eq=False)
class VAE:
    """One VAE's networks and settings; its methods are the model's pure functions."""

    encoder: base.Net
    decoder: base.Net  # a `Decoder`
    likelihood: Likelihood
    tx: optax.GradientTransformation
    latent_dim: int
    num_classes: int
    num_importance: int
    beta: Any  # a float, or a tracer inside compiled programs
    kl_warmup_steps: int
    binarize: bool
    num_dims: int
    discrete: bool

    def one_hot(self, labels):
        if not self.num_classes:
            return None
        if labels is None:
            raise ValueError('a class-conditional VAE needs labels (int32, one per image)')
        return jax.nn.one_hot(labels, self.num_classes)

    def init(self, rng, batch) -> base.TrainState:
        e_rng, d_rng = jax.random.split(rng)
        x = base.images_to_unit(batch['image'][:1])
        condition = self.one_hot(jnp.zeros((1,), jnp.int32))
        z = with_condition(jnp.zeros((1, self.latent_dim)), condition)
        params = {
            'encoder': self.encoder.init(e_rng, with_condition(x, condition), train=False)[
                'params'
            ],
            'decoder': self.decoder.init(d_rng, z, train=False)['params'],
        }
        return base.TrainState(
            step=jnp.zeros((), jnp.int32),
            params=params,
            batch_stats={},
            opt_state={'vae': self.tx.init(params)},
        )

    def observe(self, batch, rng):
        """(x, labels, one latent key per example): x in [0, 1], with dynamic binarisation a
        Bernoulli draw per pixel; labels None for unconditional models."""
        bin_rng, z_rng = jax.random.split(rng)
        num = batch['image'].shape[0]
        x = base.images_to_unit(batch['image'])
        if self.binarize:
            keys = base.example_keys(bin_rng, num)
            uniforms = jax.vmap(lambda k: jax.random.uniform(k, x.shape[1:]))(keys)
            x = (uniforms < x).astype(jnp.float32)
        labels = batch['label'] if self.num_classes else None
        return x, labels, base.example_keys(z_rng, num)

    def encode(self, params, x, labels):
        inputs = with_condition(x, self.one_hot(labels))
        stats = self.encoder.apply({'params': params['encoder']}, inputs, train=False)
        return jnp.split(stats, 2, axis=-1)

    def decode(self, params, z, labels):
        z = with_condition(z, self.one_hot(labels))
        return self.decoder.apply({'params': params['decoder']}, z, train=False)

    def elbo_terms(self, params, x, labels, keys):
        """One-sample ELBO with the analytic KL, per example."""
        mean, log_var = self.encode(params, x, labels)
        z = reparameterize(mean, log_var, base.standard_normal(keys, self.latent_dim))
        return elbo_terms(
            self.likelihood.log_prob(self.decode(params, z, labels), x), mean, log_var
        )

    def sample_terms(self, params, x, labels, keys, offset, num):
        """(log p(x|z_s), log p(z_s) - log q(z_s|x)), each (B, num), for samples
        s = offset .. offset + num - 1 of example i, drawn from fold_in(keys[i], s)."""
        mean, log_var = self.encode(params, x, labels)

        def per_example(key, x_one, label_one, mean_one, log_var_one):
            eps = base.standard_normal(base.index_keys(key, num, offset), self.latent_dim)
            z, log_ratio = latent_log_ratio(mean_one, log_var_one, eps)
            repeated = None if label_one is None else jnp.broadcast_to(label_one, (num,))
            return self.likelihood.log_prob(
                self.decode(params, z, repeated), x_one[None]
            ), log_ratio

        return jax.vmap(per_example)(keys, x, labels, mean, log_var)

    def importance_terms(self, params, x, labels, keys, kl_weight):
        """The k-sample bound with the prior ratio weighted by `kl_weight` (the objective) and
        without (the reported 'iwae_k'), plus Monte Carlo ELBO terms of the same samples."""
        log_lik, log_ratio = self.sample_terms(params, x, labels, keys, 0, self.num_importance)
        kl = -jnp.mean(log_ratio, axis=-1)
        log_lik_mean = jnp.mean(log_lik, axis=-1)
        terms = {'log_likelihood': log_lik_mean, 'kl': kl, 'elbo': log_lik_mean - kl}
        terms['iwae_k'] = log_mean_exp(log_lik + log_ratio)
        return log_mean_exp(log_lik + kl_weight * log_ratio), terms

    def with_bits(self, terms):
        if self.discrete:
            terms['bits_per_dim'] = losses.bits_per_dim(terms['elbo'], self.num_dims)
        return terms

    def train_step(self, state, batch, rng):
        x, labels, keys = self.observe(batch, rng)
        kl_weight = losses.kl_weight(state.step, self.beta, self.kl_warmup_steps)

        def loss_fn(params):
            if self.num_importance == 1:
                terms = self.elbo_terms(params, x, labels, keys)
                objective = terms['log_likelihood'] - kl_weight * terms['kl']
            else:
                objective, terms = self.importance_terms(params, x, labels, keys, kl_weight)
            return -jnp.mean(objective), terms

        (loss, terms), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        grads = jax.lax.pmean(grads, base.DATA_AXIS)
        params, opt_state = base.apply_gradients(
            self.tx, grads, state.opt_state['vae'], state.params
        )
        metrics = {'loss': loss, **{name: jnp.mean(v) for name, v in self.with_bits(terms).items()}}
        if self.kl_warmup_steps:
            metrics['kl_weight'] = kl_weight
        return (
            state.replace(step=state.step + 1, params=params, opt_state={'vae': opt_state}),
            jax.lax.pmean(metrics, base.DATA_AXIS),
        )

    def eval_step(self, state, batch, rng):
        x, labels, keys = self.observe(batch, rng)
        terms = self.elbo_terms(state.params, x, labels, keys)
        if self.num_importance > 1:
            _, importance = self.importance_terms(state.params, x, labels, keys, 1.0)
            terms['iwae_k'] = importance['iwae_k']
        return base.masked_sums(self.with_bits(terms), batch['mask'])

    def log_weights(self, state, batch, rng, offset, num):
        x, labels, keys = self.observe(batch, rng)
        log_lik, log_ratio = self.sample_terms(state.params, x, labels, keys, offset, num)
        return log_lik + log_ratio

    def decode_latents(self, state, z, labels=None):
        return self.likelihood.mean(self.decode(state.params, z, labels))

    def generate(self, state, rng, num, labels=None):
        keys = base.index_keys(rng, num)
        if self.num_classes and labels is None:  # A class per image, drawn from its own key.
            labels = jax.vmap(
                lambda k: jax.random.randint(jax.random.fold_in(k, 1), (), 0, self.num_classes)
            )(keys)
        return self.decode_latents(state, base.standard_normal(keys, self.latent_dim), labels)

    def reconstruct(self, state, images, rng, labels=None):
        del rng  # Decodes the posterior mean: deterministic reconstructions.
        mean, _ = self.encode(state.params, base.images_to_unit(images), labels)
        return self.likelihood.mean(self.decode(state.params, mean, labels))


def build(config, info) -> base.ModelDef:
    """The VAE `ModelDef` for `config` on a dataset described by `info`."""
    model_config = config.model
    num_classes = info.num_classes if model_config.conditional else 0
    encoder, decoder_net = make_nets(model_config, info.image_shape)
    wrap = base.compute_dtype_wrapper(config)
    vae = VAE(
        encoder=wrap(encoder),
        decoder=wrap(make_decoder(model_config, decoder_net, info.image_shape[-1])),
        likelihood=Likelihood(model_config.likelihood),
        tx=optim.make_optimizer(config.optim, config.lr, config.train.num_steps),
        latent_dim=model_config.latent_dim,
        num_classes=num_classes,
        num_importance=model_config.num_importance_samples,
        beta=model_config.beta,
        kl_warmup_steps=model_config.kl_warmup_steps,
        binarize=config.dataset.binarize,
        num_dims=int(np.prod(info.image_shape)),
        discrete=is_discrete(config),
    )
    image_range = (0.0, 1.0)
    return base.ModelDef(
        init=vae.init,
        train_step=vae.train_step,
        eval_step=vae.eval_step,
        generate=vae.generate,
        reconstruct=vae.reconstruct,
        log_weights=vae.log_weights,
        decode=vae.decode_latents,
        latent_dim=vae.latent_dim,
        num_classes=num_classes,
        image_range=image_range,
        summary_keys=('loss', 'elbo'),
        protocol={'metric_units': 'nats per image'},
        sample_grids=base.standard_grids(vae.generate, vae.reconstruct, num_classes, image_range),
    )


FAMILY = base.Family(
    name='vae',
    defaults=defaults,
    build=build,
    rules=RULES,
    validate=validate,
    traced=('model.beta',),
    reads=('dataset.binarize',),
)
