"""The disentangling VAEs of disentanglement_lib's study (Locatello et al. 2019), one switch.

All share its networks (`gen_models.nets.disentanglement`: 4 conv layers + dense 256 to 10
latents, the mirrored decoder), a Bernoulli likelihood on pixels in [0, 1] and the loss
reconstruction + penalty, both batch means; KL is the analytic KL to N(0, I) per image.
`model.method` picks the penalty:
- 'beta_vae' (Higgins et al. 2017): beta * KL.
- 'annealed_vae' (Burgess et al. 2018): capacity_weight * |KL - C|, C rising linearly from 0
  to c_max over capacity_steps.
- 'factor_vae' (Kim & Mnih 2018): KL + gamma * TC, TC the logit difference of a code
  discriminator trained at the same step to tell codes from codes whose dimensions were
  permuted across the batch (Adam(discriminator_lr, discriminator_b1, discriminator_b2)).
- 'dip_vae_i' / 'dip_vae_ii' (Kumar et al. 2018): KL + lambda_od * sum of squared
  off-diagonal entries + lambda_d * sum of squared diagonal deviations from 1 of the
  covariance of the means (i) or of the aggregate posterior (ii).
- 'beta_tcvae' (Chen et al. 2018): KL + (beta - 1) * TC, TC the minibatch estimate.
Batch statistics are over the global batch (codes are gathered across devices), so a run
on 8 devices computes what one device does. The encoder mean is the representation the
disentanglement metrics score (`ModelDef.represent`), and the sample grids add latent
traversals: row d decodes the mean code of the first eval image with dimension d swept
over [-2, 2].
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from gen_models import config as cfg
from gen_models import latent_regularizers as reg
from gen_models import losses, optim
from gen_models.models import base
from gen_models.nets import disentanglement as nets

METHODS = ('beta_vae', 'annealed_vae', 'factor_vae', 'dip_vae_i', 'dip_vae_ii', 'beta_tcvae')
# The penalties' weights: traced, so trials differing only in them share one compile.
WEIGHTS = ('beta', 'capacity_weight', 'c_max', 'gamma', 'lambda_od', 'lambda_d')
TRAVERSAL_STEPS = 10
TRAVERSAL_RANGE = 2.0


def defaults() -> ml_collections.ConfigDict:
    """`config.model` of a disentangling VAE: disentanglement_lib's nets, a beta-VAE."""
    model = ml_collections.ConfigDict()
    model.method = 'beta_vae'  # the penalty: ' | '.join(METHODS), see the module docstring
    model.latent_dim = 10  # size of z
    model.beta = 1.0  # beta_vae: weight of KL; beta_tcvae: weight of TC (beta - 1 added)
    model.capacity_weight = 1000.0  # annealed_vae: gamma of gamma * |KL - C|
    model.c_max = 25.0  # annealed_vae: the capacity C reached (nats)
    model.capacity_steps = 100_000  # annealed_vae: steps over which C rises from 0 to c_max
    model.gamma = 10.0  # factor_vae: weight of the discriminator's TC estimate
    model.discriminator_lr = 1e-4  # factor_vae: Adam learning rate of the code discriminator
    model.discriminator_b1 = 0.5  # factor_vae: its Adam b1
    model.discriminator_b2 = 0.9  # factor_vae: its Adam b2
    model.lambda_od = 1.0  # dip_vae_*: weight of the off-diagonal covariance entries
    model.lambda_d = 10.0  # dip_vae_*: weight of the diagonal's distance from 1 (the
    # papers: 10 lambda_od for dip_vae_i, lambda_od for dip_vae_ii)
    return model


RULES: dict[str, cfg.Rule] = {
    'model.method': cfg.choice(*METHODS),
    'model.latent_dim': cfg.at_least(1),
    'model.beta': cfg.at_least(0),
    'model.capacity_weight': cfg.at_least(0),
    'model.c_max': cfg.at_least(0),
    'model.capacity_steps': cfg.at_least(1),
    'model.gamma': cfg.at_least(0),
    'model.discriminator_lr': cfg.positive(),
    'model.discriminator_b1': cfg.unit_interval(),
    'model.discriminator_b2': cfg.unit_interval(),
    'model.lambda_od': cfg.at_least(0),
    'model.lambda_d': cfg.at_least(0),
}


def validate(config: ml_collections.ConfigDict, info: Any, num_devices: int) -> None:
    """The nets halve the image side four times: sides must be multiples of 16."""
    del num_devices
    if info is None:
        return
    if any(side % nets.DOWNSAMPLING for side in info.image_shape[:2]):
        key = 'dataset.image_size' if config.dataset.image_size else 'dataset.name'
        raise cfg.ConfigError(
            key,
            config.dataset.image_size or config.dataset.name,
            f'images whose sides are multiples of {nets.DOWNSAMPLING} '
            f'(got {tuple(info.image_shape)})',
        )


def gathered(values: jax.Array) -> jax.Array:
    """Rows of every device's batch, in global batch order (the batch statistics' input)."""
    return jax.lax.all_gather(values, base.DATA_AXIS, tiled=True)


@dataclasses.dataclass(frozen=True, eq=False)
class DisentangledVAE:
    """One model's networks and settings; hyperparameters may be tracers (vectorised)."""

    encoder: base.Net
    decoder: base.Net
    discriminator: base.Net
    tx: dict[str, optax.GradientTransformation]
    method: str
    latent_dim: int
    weights: dict[str, Any]  # beta, capacity_weight, c_max, gamma, lambda_od, lambda_d
    capacity_steps: int

    @property
    def adversarial(self) -> bool:
        return self.method == 'factor_vae'

    def init(self, rng, batch) -> base.TrainState:
        e_rng, d_rng, c_rng = jax.random.split(rng, 3)
        x = base.images_to_unit(batch['image'][:1])
        z = jnp.zeros((1, self.latent_dim))
        params = {
            'encoder': self.encoder.init(e_rng, x, train=False)['params'],
            'decoder': self.decoder.init(d_rng, z, train=False)['params'],
        }
        opt_state = {'encoder_decoder': self.tx['encoder_decoder'].init(params)}
        if self.adversarial:
            params['discriminator'] = self.discriminator.init(c_rng, z)['params']
            opt_state['discriminator'] = self.tx['discriminator'].init(params['discriminator'])
        return base.TrainState(jnp.zeros((), jnp.int32), params, {}, opt_state)

    def encode(self, params, x):
        stats = self.encoder.apply({'params': params['encoder']}, x, train=False)
        return jnp.split(stats, 2, axis=-1)

    def decode_logits(self, params, z):
        return self.decoder.apply({'params': params['decoder']}, z, train=False)

    def critic(self, params, z):
        return self.discriminator.apply({'params': params}, z)

    def terms(self, params, x, keys):
        """Per-example ELBO terms and the codes (mean, log_var, z) of images x in [0, 1]."""
        mean, log_var = self.encode(params, x)
        z = mean + jnp.exp(0.5 * log_var) * base.standard_normal(keys, self.latent_dim)
        log_likelihood = losses.bernoulli_log_likelihood(self.decode_logits(params, z), x)
        kl = losses.kl_to_standard_normal(mean, log_var)
        terms = {'log_likelihood': log_likelihood, 'kl': kl, 'elbo': log_likelihood - kl}
        return terms, (mean, log_var, z)

    def penalty(self, kl, codes, step, critic_params):
        """(The method's penalty, its logged parts) from the global batch's mean KL and
        codes (mean, log_var, z)."""
        w = self.weights
        mean, log_var, z = codes
        if self.method == 'beta_vae':
            return w['beta'] * kl, {}
        if self.method == 'annealed_vae':
            target = reg.capacity(step, w['c_max'], self.capacity_steps)
            return w['capacity_weight'] * jnp.abs(kl - target), {'capacity': target}
        if self.method == 'factor_vae':
            logits = self.critic(critic_params, z)
            tc = jnp.mean(logits[:, 0] - logits[:, 1])
            return kl + w['gamma'] * tc, {'tc': tc}
        if self.method == 'beta_tcvae':
            tc = reg.total_correlation(z, mean, log_var)
            return kl + (w['beta'] - 1.0) * tc, {'tc': tc}
        kind = self.method.removeprefix('dip_vae_')
        dip = reg.dip_penalty(
            reg.dip_covariance(mean, log_var, kind), w['lambda_od'], w['lambda_d']
        )
        return kl + dip, {'dip': dip}

    def critic_loss(self, critic_params, z, rng):
        """FactorVAE's discriminator loss: cross-entropy of telling codes (class 0) from
        codes with permuted dimensions (class 1), half of each."""
        z = jax.lax.stop_gradient(z)
        real = jax.nn.log_softmax(self.critic(critic_params, z))[:, 0]
        permuted = jax.nn.log_softmax(self.critic(critic_params, reg.permute_dimensions(z, rng)))
        return -0.5 * (jnp.mean(real) + jnp.mean(permuted[:, 1]))

    def train_step(self, state, batch, rng):
        key_rng, shuffle_rng = jax.random.split(rng)
        x = base.images_to_unit(batch['image'])
        keys = base.example_keys(key_rng, x.shape[0])
        critic_params = state.params.get('discriminator')

        def loss_fn(vae_params):
            terms, codes = self.terms(vae_params, x, keys)
            codes = tuple(gathered(c) for c in codes)
            kl = jnp.mean(gathered(terms['kl']))
            penalty, parts = self.penalty(kl, codes, state.step, critic_params)
            reconstruction = -jnp.mean(terms['log_likelihood'])
            return reconstruction + penalty, (terms, parts, codes[2])

        vae_params = {k: state.params[k] for k in ('encoder', 'decoder')}
        (loss, (terms, parts, z)), grads = jax.value_and_grad(loss_fn, has_aux=True)(vae_params)
        grads = jax.lax.pmean(grads, base.DATA_AXIS)
        params, vae_opt = base.apply_gradients(
            self.tx['encoder_decoder'], grads, state.opt_state['encoder_decoder'], vae_params
        )
        opt_state = {'encoder_decoder': vae_opt}
        metrics = {'loss': loss, **parts, **{k: jnp.mean(v) for k, v in terms.items()}}
        if self.adversarial:
            critic_loss, critic_grads = jax.value_and_grad(self.critic_loss)(
                critic_params, z, shuffle_rng
            )
            params['discriminator'], opt_state['discriminator'] = base.apply_gradients(
                self.tx['discriminator'],
                critic_grads,
                state.opt_state['discriminator'],
                critic_params,
            )
            metrics['discriminator_loss'] = critic_loss
        new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state)
        return new_state, jax.lax.pmean(metrics, base.DATA_AXIS)

    def eval_step(self, state, batch, rng):
        x = base.images_to_unit(batch['image'])
        terms, _ = self.terms(state.params, x, base.example_keys(rng, x.shape[0]))
        return base.masked_sums(terms, batch['mask'])

    def decode(self, state, z, labels=None):
        del labels  # Unconditional.
        return jax.nn.sigmoid(self.decode_logits(state.params, z))

    def generate(self, state, rng, num, labels=None):
        z = base.standard_normal(base.index_keys(rng, num), self.latent_dim)
        return self.decode(state, z, labels)

    def represent(self, state, images, rng=None):
        """The encoder means of uint8 images, the representation metrics score; with `rng`,
        a draw of q(z|x) per image instead (the sampled representation)."""
        mean, log_var = self.encode(state.params, base.images_to_unit(images))
        if rng is None:
            return mean
        keys = base.index_keys(rng, len(mean))
        return mean + jnp.exp(0.5 * log_var) * base.standard_normal(keys, self.latent_dim)

    def reconstruct(self, state, images, rng, labels=None):
        del rng  # Decodes the posterior mean: deterministic reconstructions.
        return self.decode(state, self.represent(state, images), labels)

    def traversals(self, state, image):
        """(latent_dim * TRAVERSAL_STEPS, H, W, C): row d sweeps dimension d of the mean
        code of one uint8 image (1, H, W, C) over [-2, 2], the other dimensions fixed."""
        code = self.represent(state, image)[0]
        values = jnp.linspace(-TRAVERSAL_RANGE, TRAVERSAL_RANGE, TRAVERSAL_STEPS)
        dims = jnp.repeat(jnp.arange(self.latent_dim), TRAVERSAL_STEPS)
        sweeps = jnp.tile(values, self.latent_dim)
        z = jnp.tile(code, (len(dims), 1)).at[jnp.arange(len(dims)), dims].set(sweeps)
        return self.decode(state, z)


def traversal_grids(model: DisentangledVAE) -> base.SampleGrids:
    """The standard grids (samples, reconstructions) plus 'traversals'."""
    standard = base.standard_grids(model.generate, model.reconstruct, 0, (0.0, 1.0))

    def grids(state, rng, num_samples, eval_batch):
        out = standard(state, rng, num_samples, eval_batch)
        image = eval_batch(1)['image']
        out['traversals'] = base.Grid(
            np.asarray(jax.jit(model.traversals)(state, image)), TRAVERSAL_STEPS
        )
        return out

    return grids


def build(config, info) -> base.ModelDef:
    """The disentangling VAE `ModelDef` for `config` on a dataset described by `info`."""
    model_config = config.model
    image_shape = tuple(info.image_shape)
    tx = {'encoder_decoder': optim.make_optimizer(config.optim, config.lr, config.train.num_steps)}
    if model_config.method == 'factor_vae':
        tx['discriminator'] = optax.inject_hyperparams(optax.adam)(
            learning_rate=model_config.discriminator_lr,
            b1=model_config.discriminator_b1,
            b2=model_config.discriminator_b2,
        )
    wrap = base.compute_dtype_wrapper(config)
    model = DisentangledVAE(
        encoder=wrap(nets.ConvEncoder(outputs=2 * model_config.latent_dim)),
        decoder=wrap(nets.DeconvDecoder(image_shape=image_shape)),
        discriminator=wrap(nets.CodeDiscriminator()),
        tx=tx,
        method=model_config.method,
        latent_dim=model_config.latent_dim,
        weights={key: model_config[key] for key in WEIGHTS},
        capacity_steps=model_config.capacity_steps,
    )
    summary = {'factor_vae': 'tc', 'beta_tcvae': 'tc', 'annealed_vae': 'capacity'}
    return base.ModelDef(
        init=model.init,
        train_step=model.train_step,
        eval_step=model.eval_step,
        generate=model.generate,
        reconstruct=model.reconstruct,
        decode=model.decode,
        represent=model.represent,
        latent_dim=model.latent_dim,
        image_range=(0.0, 1.0),
        summary_keys=('loss', 'elbo', *filter(None, [summary.get(model.method)])),
        protocol={'metric_units': 'nats per image (Bernoulli likelihood of pixels in [0, 1])'},
        sample_grids=traversal_grids(model),
    )


FAMILY = base.Family(
    name='disentangled_vae',
    defaults=defaults,
    build=build,
    rules=RULES,
    validate=validate,
    traced=tuple(f'model.{key}' for key in WEIGHTS),
)
