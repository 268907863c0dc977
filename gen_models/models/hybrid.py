"""VAE plus image-to-image generator for image transformation (the design document's "CVAE").

An encoder q(z|x), a decoder p(x|z) and a generator G that turns the decoded image into the
transformed image x'. Training pairs (x, x') are made on device from each batch by
`gen_models.data.transforms` (`config.transform`: rotation, flip, zoom, inpainting, denoising),
so the exact target of every output is known.

Paired (`transform.pairing = 'paired'`, x' = T(x)), the loss per example is

    L(x, x') = -E_q[log p(x | z)] + beta KL(q(z|x) || N(0, I)) - E_q[log p(x' | G(m(z)))]
               + adversarial_weight * L_adv

that is -ELBO(x) - E_q[log p(x' | G(.))], the design's objective, with m(z) the decoder's mean
image and p(x' | G(.)) of the same family as p(x|z) (`model.likelihood`) with G's output as
its logits / mean. The transform term trains G, the decoder and the encoder.
`model.generator_input` chooses what G sees: 'decoded' m(z) (the design as written),
'input' x itself (G is then an image-to-image net beside a VAE, which measures what the
bottleneck costs) or 'both' (m(z) and x stacked as channels).

Unpaired (`'unpaired'`, UNIT: Liu, Breuel & Kautz 2017): on each device, domain A holds the
inputs x of the batch's even examples and domain B the targets T(x) of its odd ones, so no
pair is ever given. Each domain d has an encoder E_d and a decoder D_d; the encoders' last
layer and the decoders' first layer are shared, so both domains use one latent space. With
z_d ~ q_d(z | x_d) and translations x_AB = m_B(z_A), x_BA = m_A(z_B):

    L = sum_d -ELBO_d(x_d)
        + cycle_weight * sum_d [-E log p_d(x_d | z_ded) + beta KL(q_e(z | x_de) || N(0, I))]
        + adversarial_weight * L_adv

where e is the other domain and z_ded ~ q_e(z | x_de) re-encodes the translation of x_d
(cycles A->B->A and B->A->B).

L_adv (`model.use_adversarial`; by default on when adversarial_weight > 0): a small DCGAN discriminator per output domain (paired: the
targets x'; unpaired: A and B; `model.width`, dropout `model.d_dropout`) learns to tell real
images of that domain from the outputs (G(m(z)); the translations) with the GAN discriminator
loss, and the outputs' side minimises `model.gan_loss`. Both players update at once from the
same step: D on the current outputs, the rest against the current D; D's learning rate is
lr * optim.d_lr_multiplier.

Evaluation (per example, summed by `base.masked_sums`): the ELBO terms in nats per image and
the accuracy of the deterministic outputs (posterior means; unpaired: the A->B translation
of every input) against the exact targets T(x): MSE, PSNR and SSIM
(`gen_models.metrics.transformation`), plus identity_mse / _psnr / _ssim, the untransformed
input scored the same way (the do-nothing baseline), and paired, reconstruction_mse / _psnr /
_ssim, the VAE's reconstruction of the input (what the 'decoded' G sees). Inpainting also reports completed_mse /
_psnr / _ssim: the output with the known pixels pasted back, as inpainting is usually scored.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax
from ml_collections import config_dict

from gen_models import config as cfg
from gen_models import losses, nets, optim
from gen_models.data import transforms
from gen_models.metrics import transformation
from gen_models.models import base, translation, vae

OTHER = {'a': 'b', 'b': 'a'}
GENERATOR_INPUTS = ('decoded', 'input', 'both')


def defaults() -> ml_collections.ConfigDict:
    """`config.model` of the hybrid: conv VAE, Bernoulli likelihood, no discriminator."""
    model = ml_collections.ConfigDict()
    model.latent_dim = 16  # size of z
    model.width = 32  # channels of the widest-resolution stage of every net
    model.kernel_size = 4  # kernel side of every conv layer
    model.code_dim = 128  # width of G's dense bottleneck (image -> code -> image); unpaired:
    # of the layers the two domains' encoders and decoders share
    model.likelihood = 'bernoulli'  # p(x|z) and p(x'|G(.)): 'bernoulli' | 'gaussian'
    model.decoder_std = 0.1  # gaussian: (initial) std of both likelihoods
    model.learn_decoder_std = False  # gaussian: learn those stds
    model.beta = 1.0  # weight of the KL terms in the loss
    model.adversarial_weight = 0.0  # weight of a DCGAN discriminator's loss on the outputs
    # (unpaired: on both translations)
    model.use_adversarial = config_dict.placeholder(bool)  # train that discriminator; None:
    # if adversarial_weight != 0
    model.d_dropout = 0.3  # dropout rate after each discriminator conv layer
    model.gan_loss = 'non_saturating'  # the outputs' GAN loss (losses.GAN_LOSSES)
    model.cycle_weight = 1.0  # unpaired: weight of the cycle terms A->B->A, B->A->B
    model.generator_input = 'decoded'  # paired: what G sees: 'decoded' (the decoder's mean
    # image) | 'input' (the input image) | 'both' (the two stacked as channels)
    return model


RULES: dict[str, cfg.Rule] = {
    'model.latent_dim': cfg.at_least(1),
    'model.width': cfg.at_least(1),
    'model.kernel_size': cfg.at_least(1),
    'model.code_dim': cfg.at_least(1),
    'model.likelihood': cfg.choice('bernoulli', 'gaussian'),
    'model.decoder_std': cfg.positive(),
    'model.beta': cfg.at_least(0),
    'model.adversarial_weight': cfg.at_least(0),
    'model.d_dropout': cfg.unit_interval(),
    'model.gan_loss': cfg.choice(*losses.GAN_LOSSES),
    'model.cycle_weight': cfg.at_least(0),
    'model.generator_input': cfg.choice(*GENERATOR_INPUTS),
}


def validate(config: ml_collections.ConfigDict, info: Any, num_devices: int) -> None:
    """Unpaired batches split into two domains per device and have no G to feed; SSIM needs
    its window's size."""
    batch = config.train.batch_size
    unpaired = config.transform.pairing == 'unpaired'
    if unpaired and config.model.generator_input != 'decoded':
        raise cfg.ConfigError(
            'model.generator_input',
            config.model.generator_input,
            "'decoded' with unpaired transforms (they have no generator G)",
        )
    if unpaired and batch % (2 * num_devices):
        raise cfg.ConfigError(
            'train.batch_size',
            batch,
            f'with unpaired transforms, a multiple of 2 x the device count ({2 * num_devices}): '
            'each device splits its examples into domains A and B',
        )
    if info is not None:
        base.check_conv_images(config, info, min_side=transformation.WINDOW)


class ImageToImage(nn.Module):
    """G: DownConvStack to a `code_dim` code, then UpConvStack back to image logits.

    The dense bottleneck lets G move content anywhere in the image (a rotation), which a
    stack of local convolutions could not.
    """

    image_shape: tuple[int, ...]
    width: int
    kernel_size: int
    code_dim: int

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        code = nets.DownConvStack(
            outputs=self.code_dim, width=self.width, kernel_size=self.kernel_size
        )(x, train=train)
        return nets.UpConvStack(
            image_shape=self.image_shape,
            width=self.width,
            kernel_size=self.kernel_size,
            use_batch_norm=False,
            output_activation='none',
        )(nn.leaky_relu(code, negative_slope=0.2), train=train)


def _modules(
    model_config, image_shape: tuple[int, ...], unpaired: bool
) -> dict[str, tuple[nn.Module, str]]:
    """The trained nets (the discriminators apart) by parameter name, with the kind of their
    input: 'image', 'generator' (G's input), 'latent' (z) or 'code' (a `code_dim` vector)."""
    width, kernel_size = model_config.width, model_config.kernel_size
    channels = image_shape[-1]

    def decoder(net):
        return vae.make_decoder(model_config, net, channels)

    if not unpaired:
        encoder, decoder_net = vae.make_nets(model_config, image_shape)
        generator = ImageToImage(image_shape, width, kernel_size, model_config.code_dim)
        return {
            'encoder': (encoder, 'image'),
            'decoder': (decoder(decoder_net), 'latent'),
            'generator': (decoder(generator), 'generator'),
        }
    modules = {
        'shared_encoder': (
            nets.MLP(hidden=(), output_shape=(2 * model_config.latent_dim,)),
            'code',
        ),
        'shared_decoder': (nets.MLP(hidden=(), output_shape=(model_config.code_dim,)), 'latent'),
    }
    for domain in OTHER:
        modules[f'encoder_{domain}'] = (
            nets.DownConvStack(outputs=model_config.code_dim, width=width, kernel_size=kernel_size),
            'image',
        )
        up_stack = nets.UpConvStack(
            image_shape=image_shape,
            width=width,
            kernel_size=kernel_size,
            use_batch_norm=False,
            output_activation='none',
        )
        modules[f'decoder_{domain}'] = (decoder(up_stack), 'code')
    return modules


@dataclasses.dataclass(frozen=True, eq=False)
class Hybrid:
    """One hybrid's networks and settings; its methods are the model's pure functions."""

    modules: dict[str, tuple[base.Net, str]]
    discriminator: base.Net
    tx: optax.GradientTransformation
    d_tx: optax.GradientTransformation
    likelihood: vae.Likelihood
    transform_config: ml_collections.ConfigDict
    latent_dim: int
    code_dim: int
    unpaired: bool
    generator_input: str  # model.generator_input
    adversarial: bool
    kind: str  # model.gan_loss
    beta: Any  # weights: floats, or tracers inside compiled programs
    adversarial_weight: Any
    cycle_weight: Any

    @property
    def output_domains(self) -> tuple[str, ...]:
        return ('a', 'b') if self.unpaired else ('target',)

    def init(self, rng, batch) -> base.TrainState:
        x = base.images_to_unit(batch['image'][:1])
        inputs = {
            'image': x,
            'generator': self.generator_sees(x, x),
            'latent': jnp.zeros((1, self.latent_dim)),
            'code': jnp.zeros((1, self.code_dim)),
        }
        keys = jax.random.split(rng, len(self.modules) + 1)
        params = {
            name: module.init(key, inputs[kind], train=False)['params']
            for key, (name, (module, kind)) in zip(keys, sorted(self.modules.items()))
        }
        opt_state = {'model': self.tx.init(params)}
        if self.adversarial:
            d_keys = jax.random.split(keys[-1], len(self.output_domains))
            params['discriminator'] = {
                domain: self.discriminator.init(key, x, train=False)['params']
                for key, domain in zip(d_keys, self.output_domains)
            }
            opt_state['discriminator'] = self.d_tx.init(params['discriminator'])
        return base.TrainState(
            step=jnp.zeros((), jnp.int32), params=params, batch_stats={}, opt_state=opt_state
        )

    def apply(self, params, name, inputs):
        return self.modules[name][0].apply({'params': params[name]}, inputs, train=False)

    def encode(self, params, x, domain='a'):
        """(mean, log_var) of q_domain(z | x)."""
        if not self.unpaired:
            stats = self.apply(params, 'encoder', x)
        else:
            hidden = nn.leaky_relu(self.apply(params, f'encoder_{domain}', x), negative_slope=0.2)
            stats = self.apply(params, 'shared_encoder', hidden)
        return jnp.split(stats, 2, axis=-1)

    def decode(self, params, z, domain='a'):
        """(logits or mean logits, log_std) of p_domain(x | z)."""
        if not self.unpaired:
            return self.apply(params, 'decoder', z)
        hidden = nn.relu(self.apply(params, 'shared_decoder', z))
        return self.apply(params, f'decoder_{domain}', hidden)

    def generator_sees(self, source, decoded_mean):
        """G's input from the input images and their decoded mean images."""
        if self.generator_input == 'input':
            return source
        if self.generator_input == 'both':
            return jnp.concatenate([decoded_mean, source], axis=-1)
        return decoded_mean

    def generate_output(self, params, source, decoded):
        """G's logits / mean for inputs `source` whose decodings are `decoded`."""
        return self.apply(
            params, 'generator', self.generator_sees(source, self.likelihood.mean(decoded))
        )

    def sample_z(self, mean, log_var, keys):
        return vae.reparameterize(mean, log_var, base.standard_normal(keys, self.latent_dim))

    def elbo_terms(self, params, x, keys, domain='a'):
        """Per-example ELBO terms of x under domain `domain`, the sampled z and its decoding."""
        mean, log_var = self.encode(params, x, domain)
        z = self.sample_z(mean, log_var, keys)
        decoded = self.decode(params, z, domain)
        return vae.elbo_terms(self.likelihood.log_prob(decoded, x), mean, log_var), z, decoded

    def translate(self, params, images):
        """The deterministic output for inputs in [0, 1]: from the posterior mean, G's mean
        image (paired) or the A->B translation (unpaired)."""
        mean, _ = self.encode(params, images, 'a')
        if self.unpaired:
            return self.likelihood.mean(self.decode(params, mean, 'b'))
        return self.likelihood.mean(self.generate_output(params, images, self.decode(params, mean)))

    def reconstruction(self, params, images):
        """The VAE's deterministic reconstruction of inputs in [0, 1] (posterior mean)."""
        mean, _ = self.encode(params, images)
        return self.likelihood.mean(self.decode(params, mean))

    def pairs(self, images, keys):
        """(input, target) of uint8 images; `keys` (one per image) draw noise and masks."""
        return transforms.make_pair(self.transform_config, base.images_to_unit(images), keys)

    def paired_objective(self, params, source, target, rng):
        """(loss, metrics, real outputs, outputs) of a paired batch."""
        keys = base.example_keys(rng, source.shape[0])
        terms, _, decoded = self.elbo_terms(params, source, keys)
        output = self.generate_output(params, source, decoded)
        terms['transform_log_likelihood'] = self.likelihood.log_prob(output, target)
        loss = -jnp.mean(
            terms['log_likelihood'] - self.beta * terms['kl'] + terms['transform_log_likelihood']
        )
        metrics = {name: jnp.mean(value) for name, value in terms.items()}
        return loss, metrics, {'target': target}, {'target': self.likelihood.mean(output)}

    def unpaired_objective(self, params, source, target, rng):
        """(loss, metrics, real images, translations) per domain of an unpaired batch."""
        x = {'a': source[0::2], 'b': target[1::2]}
        half = x['a'].shape[0]
        vae_rng, cycle_rng = jax.random.split(rng)
        loss, metrics, translations = 0.0, {}, {}
        for index, domain in enumerate(OTHER):
            keys = base.example_keys(jax.random.fold_in(vae_rng, index), half)
            terms, z, _ = self.elbo_terms(params, x[domain], keys, domain)
            loss += -jnp.mean(terms['log_likelihood'] - self.beta * terms['kl'])
            for name, value in terms.items():
                metrics[name if domain == 'a' else f'{name}_b'] = jnp.mean(value)
            translations[OTHER[domain]] = self.likelihood.mean(
                self.decode(params, z, OTHER[domain])
            )
        cycle = 0.0
        for index, domain in enumerate(OTHER):
            keys = base.example_keys(jax.random.fold_in(cycle_rng, index), half)
            mean, log_var = self.encode(params, translations[OTHER[domain]], OTHER[domain])
            decoded = self.decode(params, self.sample_z(mean, log_var, keys), domain)
            cycle += -jnp.mean(
                self.likelihood.log_prob(decoded, x[domain])
                - self.beta * losses.kl_to_standard_normal(mean, log_var)
            )
        metrics['cycle_loss'] = cycle
        return loss + self.cycle_weight * cycle, metrics, x, translations

    def discriminate(self, d_params, images, rng):
        """Training logits of D; example i's dropout masks come from its own key (by its index
        in the global batch), so they do not depend on the device count."""
        keys = base.example_keys(rng, images.shape[0])

        def one(image, key):
            logits = self.discriminator.apply(
                {'params': d_params}, 2.0 * image[None] - 1.0, train=True, rngs={'dropout': key}
            )
            return logits[0, 0]

        return jax.vmap(one)(images, keys)

    def generator_loss(self, d_params, outputs, rng):
        return sum(
            jnp.mean(
                losses.generator_loss(
                    self.discriminate(
                        d_params[domain], outputs[domain], jax.random.fold_in(rng, i)
                    ),
                    self.kind,
                )
            )
            for i, domain in enumerate(self.output_domains)
        )

    def discriminator_loss(self, d_params, reals, outputs, rng):
        real_rng, fake_rng = jax.random.split(rng)
        return sum(
            jnp.mean(
                losses.discriminator_loss(
                    self.discriminate(
                        d_params[domain], reals[domain], jax.random.fold_in(real_rng, i)
                    ),
                    self.discriminate(
                        d_params[domain], outputs[domain], jax.random.fold_in(fake_rng, i)
                    ),
                    self.kind,
                )
            )
            for i, domain in enumerate(self.output_domains)
        )

    def train_step(self, state, batch, rng):
        pair_rng, z_rng, g_rng, d_rng = jax.random.split(rng, 4)
        source, target = self.pairs(
            batch['image'], base.example_keys(pair_rng, batch['image'].shape[0])
        )
        objective = self.unpaired_objective if self.unpaired else self.paired_objective
        model_params = {k: v for k, v in state.params.items() if k != 'discriminator'}

        def loss_fn(params):
            loss, metrics, reals, outputs = objective(params, source, target, z_rng)
            if self.adversarial:
                metrics['g_loss'] = self.generator_loss(
                    state.params['discriminator'], outputs, g_rng
                )
                loss = loss + self.adversarial_weight * metrics['g_loss']
            return loss, (metrics, reals, outputs)

        (loss, (metrics, reals, outputs)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            model_params
        )
        grads = jax.lax.pmean(grads, base.DATA_AXIS)
        params, model_opt = base.apply_gradients(
            self.tx, grads, state.opt_state['model'], model_params
        )
        opt_state = {'model': model_opt}
        if self.adversarial:
            d_loss, d_grads = jax.value_and_grad(self.discriminator_loss)(
                state.params['discriminator'], reals, jax.lax.stop_gradient(outputs), d_rng
            )
            d_grads = jax.lax.pmean(d_grads, base.DATA_AXIS)
            params['discriminator'], opt_state['discriminator'] = base.apply_gradients(
                self.d_tx, d_grads, state.opt_state['discriminator'], state.params['discriminator']
            )
            metrics['d_loss'] = d_loss
        metrics['loss'] = loss
        new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state)
        return new_state, jax.lax.pmean(metrics, base.DATA_AXIS)

    def eval_step(self, state, batch, rng):
        pair_rng, z_rng = jax.random.split(rng)
        params = state.params
        keys_of_pairs = base.example_keys(pair_rng, batch['image'].shape[0])
        source, target = self.pairs(batch['image'], keys_of_pairs)
        keys = base.example_keys(z_rng, source.shape[0])
        per_example, _, decoded = self.elbo_terms(params, source, keys)
        if self.unpaired:
            terms_b, _, _ = self.elbo_terms(params, target, keys, 'b')
            per_example.update({f'{name}_b': value for name, value in terms_b.items()})
        else:
            output = self.generate_output(params, source, decoded)
            per_example['transform_log_likelihood'] = self.likelihood.log_prob(output, target)
            per_example['objective'] = per_example['elbo'] + per_example['transform_log_likelihood']
            # How much of the input passes the bottleneck: what G sees in the 'decoded' design.
            scores = transformation.scores(self.reconstruction(params, source), source)
            per_example.update({f'reconstruction_{k}': v for k, v in scores.items()})
        per_example.update(self.output_scores(params, source, target, keys_of_pairs))
        return base.masked_sums(per_example, batch['mask'])

    def output_scores(self, params, source, target, keys_of_pairs):
        return translation.output_scores(
            self.translate(params, source), source, target, self.transform_config, keys_of_pairs
        )

    def transform(self, state, images, rng):
        """Outputs for model inputs `images` in [0, 1] (e.g. masked or noisy ones)."""
        del rng  # Decodes posterior means: deterministic outputs.
        return self.translate(state.params, images)

    def decode_latents(self, state, z, labels=None):
        del labels  # Unconditional.
        return self.likelihood.mean(self.decode(state.params, z))

    def generate(self, state, rng, num, labels=None):
        z = base.standard_normal(base.index_keys(rng, num), self.latent_dim)
        return self.decode_latents(state, z, labels)

    def reconstruct(self, state, images, rng):
        del rng  # Decodes the posterior mean.
        return self.reconstruction(state.params, base.images_to_unit(images))


def build(config, info) -> base.ModelDef:
    """The hybrid `ModelDef` for `config` on a dataset described by `info`."""
    model_config = config.model
    unpaired = config.transform.pairing == 'unpaired'
    num_steps = config.train.num_steps
    wrap = base.compute_dtype_wrapper(config)
    modules = _modules(model_config, tuple(info.image_shape), unpaired)
    hybrid = Hybrid(
        modules={name: (wrap(module), kind) for name, (module, kind) in modules.items()},
        discriminator=wrap(
            nets.DownConvStack(
                outputs=1,
                width=model_config.width,
                kernel_size=model_config.kernel_size,
                dropout_rate=model_config.d_dropout,
            )
        ),
        tx=optim.make_optimizer(config.optim, config.lr, num_steps),
        d_tx=optim.make_optimizer(
            config.optim, config.lr * config.optim.d_lr_multiplier, num_steps
        ),
        likelihood=vae.Likelihood(model_config.likelihood),
        transform_config=config.transform,
        latent_dim=model_config.latent_dim,
        code_dim=model_config.code_dim,
        unpaired=unpaired,
        generator_input=model_config.generator_input,
        adversarial=base.switch(model_config.use_adversarial, model_config.adversarial_weight),
        kind=model_config.gan_loss,
        beta=model_config.beta,
        adversarial_weight=model_config.adversarial_weight,
        cycle_weight=model_config.cycle_weight,
    )
    image_range = (0.0, 1.0)
    standard = base.standard_grids(hybrid.generate, hybrid.reconstruct, 0, image_range)

    def sample_grids(state, rng, num_samples, eval_batch):
        grids = standard(state, rng, num_samples, eval_batch)
        grids['transformations'] = translation.transformation_grid(
            hybrid.transform, config.transform, state, rng, num_samples, eval_batch
        )
        return grids

    return base.ModelDef(
        init=hybrid.init,
        train_step=hybrid.train_step,
        eval_step=hybrid.eval_step,
        generate=hybrid.generate,
        reconstruct=hybrid.reconstruct,
        transform=hybrid.transform,
        pairs=hybrid.pairs,
        decode=hybrid.decode_latents,
        latent_dim=hybrid.latent_dim,
        image_range=image_range,
        summary_keys=('loss', 'elbo', 'd_loss', 'g_loss'),
        protocol={
            'transform': config.transform.to_dict(),
            'metric_units': 'ELBO terms in nats per image; ' + transformation.PROTOCOL,
        },
        sample_grids=sample_grids,
    )


FAMILY = base.Family(
    name='hybrid',
    defaults=defaults,
    build=build,
    rules=RULES,
    validate=validate,
    traced=('model.beta', 'model.adversarial_weight', 'model.cycle_weight'),
    toggles={'model.use_adversarial': 'model.adversarial_weight'},
    reads=('transform.*', 'optim.d_lr_multiplier'),
)
