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

L_adv (adversarial_weight > 0): a small DCGAN discriminator per output domain (paired: the
targets x'; unpaired: A and B; `model.width`, dropout `model.d_dropout`) learns to tell real
images of that domain from the outputs (G(m(z)); the translations) with the GAN discriminator
loss, and the outputs' side minimises `model.gan_loss`. Both players update at once from the same step: D on the current outputs, the
rest against the current D; D's learning rate is lr * optim.d_lr_multiplier.

Evaluation (per example, summed by `base.masked_sums`): the ELBO terms in nats per image and
the accuracy of the deterministic outputs (posterior means; unpaired: the A->B translation
of every input) against the exact targets T(x): MSE, PSNR and SSIM
(`gen_models.metrics.transformation`), plus identity_mse / _psnr / _ssim, the untransformed
input scored the same way (the do-nothing baseline). Inpainting also reports completed_mse /
_psnr / _ssim: the output with the known pixels pasted back, as inpainting is usually scored.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gen_models import losses, nets, optim
from gen_models.data import transforms
from gen_models.metrics import transformation
from gen_models.models import base, vae

OTHER = {'a': 'b', 'b': 'a'}


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
    input: 'image', 'latent' (z) or 'code' (a `code_dim` vector)."""
    width, kernel_size = model_config.width, model_config.kernel_size

    def decoder(net):
        return vae.Decoder(
            net=net,
            initial_log_std=float(np.log(model_config.decoder_std)),
            learn_log_std=model_config.likelihood == 'gaussian' and model_config.learn_decoder_std,
        )

    if not unpaired:
        encoder, decoder_net = vae.make_nets(model_config, image_shape)
        generator = ImageToImage(image_shape, width, kernel_size, model_config.code_dim)
        return {
            'encoder': (encoder, 'image'),
            'decoder': (decoder(decoder_net), 'latent'),
            'generator': (decoder(generator), 'image'),
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


def build(config, info) -> base.ModelDef:
    """The hybrid `ModelDef` for `config` on a dataset described by `info`."""
    model_config, transform_config = config.model, config.transform
    latent_dim = model_config.latent_dim
    image_shape = tuple(info.image_shape)
    unpaired = transform_config.pairing == 'unpaired'
    adversarial = model_config.adversarial_weight > 0
    modules = _modules(model_config, image_shape, unpaired)
    discriminator = nets.DownConvStack(
        outputs=1,
        width=model_config.width,
        kernel_size=model_config.kernel_size,
        dropout_rate=model_config.d_dropout,
    )
    output_domains = ('a', 'b') if unpaired else ('target',)
    tx = optim.make_optimizer(config.optim, config.lr, config.train.num_steps)
    d_tx = optim.make_optimizer(
        config.optim, config.lr * config.optim.d_lr_multiplier, config.train.num_steps
    )

    def init(rng, batch):
        x = base.images_to_unit(batch['image'][:1])
        inputs = {
            'image': x,
            'latent': jnp.zeros((1, latent_dim)),
            'code': jnp.zeros((1, model_config.code_dim)),
        }
        keys = jax.random.split(rng, len(modules) + 1)
        params = {
            name: module.init(key, inputs[kind], train=False)['params']
            for key, (name, (module, kind)) in zip(keys, sorted(modules.items()))
        }
        opt_state = {'model': tx.init(params)}
        if adversarial:
            d_keys = jax.random.split(keys[-1], len(output_domains))
            params['discriminator'] = {
                domain: discriminator.init(key, x, train=False)['params']
                for key, domain in zip(d_keys, output_domains)
            }
            opt_state['discriminator'] = d_tx.init(params['discriminator'])
        return base.TrainState(
            step=jnp.zeros((), jnp.int32), params=params, batch_stats={}, opt_state=opt_state
        )

    def apply(params, name, inputs):
        return modules[name][0].apply({'params': params[name]}, inputs, train=False)

    def encode(params, x, domain='a'):
        """(mean, log_var) of q_domain(z | x)."""
        if not unpaired:
            stats = apply(params, 'encoder', x)
        else:
            hidden = nn.leaky_relu(apply(params, f'encoder_{domain}', x), negative_slope=0.2)
            stats = apply(params, 'shared_encoder', hidden)
        return jnp.split(stats, 2, axis=-1)

    def decode(params, z, domain='a'):
        """(logits or mean logits, log_std) of p_domain(x | z)."""
        if not unpaired:
            return apply(params, 'decoder', z)
        hidden = nn.relu(apply(params, 'shared_decoder', z))
        return apply(params, f'decoder_{domain}', hidden)

    def log_likelihood(decoded, x):
        out, log_std = decoded
        if model_config.likelihood == 'bernoulli':
            return losses.bernoulli_log_likelihood(out, x)
        return losses.gaussian_log_likelihood(jax.nn.sigmoid(out), log_std, x)

    def mean_image(decoded):
        return jax.nn.sigmoid(decoded[0])

    def sample_z(mean, log_var, keys):
        return mean + jnp.exp(0.5 * log_var) * base.standard_normal(keys, latent_dim)

    def elbo_terms(params, x, keys, domain='a'):
        """Per-example ELBO terms of x under domain `domain`, the sampled z and its decoding."""
        mean, log_var = encode(params, x, domain)
        z = sample_z(mean, log_var, keys)
        decoded = decode(params, z, domain)
        log_lik = log_likelihood(decoded, x)
        kl = losses.kl_to_standard_normal(mean, log_var)
        return {'log_likelihood': log_lik, 'kl': kl, 'elbo': log_lik - kl}, z, decoded

    def translate(params, images):
        """The deterministic output for inputs in [0, 1]: from the posterior mean, G's mean
        image (paired) or the A->B translation (unpaired)."""
        mean, _ = encode(params, images, 'a')
        if unpaired:
            return mean_image(decode(params, mean, 'b'))
        return mean_image(apply(params, 'generator', mean_image(decode(params, mean))))

    def pair_keys(batch, rng):
        """The per-example keys of the transformation (noise, random masks)."""
        return base.example_keys(rng, batch['image'].shape[0])

    def pairs(batch, keys):
        return transforms.make_pair(transform_config, base.images_to_unit(batch['image']), keys)

    def paired_objective(params, source, target, rng):
        """(loss, metrics, real outputs, outputs) of a paired batch."""
        terms, _, decoded = elbo_terms(params, source, base.example_keys(rng, source.shape[0]))
        output = apply(params, 'generator', mean_image(decoded))
        terms['transform_log_likelihood'] = log_likelihood(output, target)
        loss = -jnp.mean(
            terms['log_likelihood']
            - model_config.beta * terms['kl']
            + terms['transform_log_likelihood']
        )
        metrics = {name: jnp.mean(value) for name, value in terms.items()}
        return loss, metrics, {'target': target}, {'target': mean_image(output)}

    def unpaired_objective(params, source, target, rng):
        """(loss, metrics, real images, translations) per domain of an unpaired batch."""
        x = {'a': source[0::2], 'b': target[1::2]}
        half = x['a'].shape[0]
        vae_rng, cycle_rng = jax.random.split(rng)
        loss, metrics, translations = 0.0, {}, {}
        for index, domain in enumerate(OTHER):
            keys = base.example_keys(jax.random.fold_in(vae_rng, index), half)
            terms, z, _ = elbo_terms(params, x[domain], keys, domain)
            loss += -jnp.mean(terms['log_likelihood'] - model_config.beta * terms['kl'])
            for name, value in terms.items():
                metrics[name if domain == 'a' else f'{name}_b'] = jnp.mean(value)
            translations[OTHER[domain]] = mean_image(decode(params, z, OTHER[domain]))
        cycle = 0.0
        for index, domain in enumerate(OTHER):
            keys = base.example_keys(jax.random.fold_in(cycle_rng, index), half)
            mean, log_var = encode(params, translations[OTHER[domain]], OTHER[domain])
            decoded = decode(params, sample_z(mean, log_var, keys), domain)
            cycle += -jnp.mean(
                log_likelihood(decoded, x[domain])
                - model_config.beta * losses.kl_to_standard_normal(mean, log_var)
            )
        metrics['cycle_loss'] = cycle
        return loss + model_config.cycle_weight * cycle, metrics, x, translations

    objective = unpaired_objective if unpaired else paired_objective

    def discriminate(d_params, images, rng):
        """Training logits of D; example i's dropout masks come from its own key (by its index
        in the global batch), so they do not depend on the device count."""
        keys = base.example_keys(rng, images.shape[0])

        def one(image, key):
            logits = discriminator.apply(
                {'params': d_params}, 2.0 * image[None] - 1.0, train=True, rngs={'dropout': key}
            )
            return logits[0, 0]

        return jax.vmap(one)(images, keys)

    def generator_loss(d_params, outputs, rng):
        return sum(
            jnp.mean(
                losses.generator_loss(
                    discriminate(d_params[domain], outputs[domain], jax.random.fold_in(rng, i)),
                    model_config.gan_loss,
                )
            )
            for i, domain in enumerate(output_domains)
        )

    def discriminator_loss(d_params, reals, outputs, rng):
        real_rng, fake_rng = jax.random.split(rng)
        return sum(
            jnp.mean(
                losses.discriminator_loss(
                    discriminate(d_params[domain], reals[domain], jax.random.fold_in(real_rng, i)),
                    discriminate(
                        d_params[domain], outputs[domain], jax.random.fold_in(fake_rng, i)
                    ),
                    model_config.gan_loss,
                )
            )
            for i, domain in enumerate(output_domains)
        )

    def train_step(state, batch, rng):
        pair_rng, z_rng, g_rng, d_rng = jax.random.split(rng, 4)
        source, target = pairs(batch, pair_keys(batch, pair_rng))
        model_params = {k: v for k, v in state.params.items() if k != 'discriminator'}

        def loss_fn(params):
            loss, metrics, reals, outputs = objective(params, source, target, z_rng)
            if adversarial:
                metrics['g_loss'] = generator_loss(state.params['discriminator'], outputs, g_rng)
                loss = loss + model_config.adversarial_weight * metrics['g_loss']
            return loss, (metrics, reals, outputs)

        (loss, (metrics, reals, outputs)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            model_params
        )
        grads = jax.lax.pmean(grads, base.DATA_AXIS)
        params, model_opt = base.apply_gradients(tx, grads, state.opt_state['model'], model_params)
        opt_state = {'model': model_opt}
        if adversarial:
            d_loss, d_grads = jax.value_and_grad(discriminator_loss)(
                state.params['discriminator'], reals, jax.lax.stop_gradient(outputs), d_rng
            )
            d_grads = jax.lax.pmean(d_grads, base.DATA_AXIS)
            params['discriminator'], opt_state['discriminator'] = base.apply_gradients(
                d_tx, d_grads, state.opt_state['discriminator'], state.params['discriminator']
            )
            metrics['d_loss'] = d_loss
        metrics['loss'] = loss
        new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state)
        return new_state, jax.lax.pmean(metrics, base.DATA_AXIS)

    def eval_step(state, batch, rng):
        pair_rng, z_rng = jax.random.split(rng)
        params = state.params
        keys_of_pairs = pair_keys(batch, pair_rng)
        source, target = pairs(batch, keys_of_pairs)
        keys = base.example_keys(z_rng, source.shape[0])
        per_example, _, decoded = elbo_terms(params, source, keys)
        if unpaired:
            terms_b, _, _ = elbo_terms(params, target, keys, 'b')
            per_example.update({f'{name}_b': value for name, value in terms_b.items()})
        else:
            output = apply(params, 'generator', mean_image(decoded))
            per_example['transform_log_likelihood'] = log_likelihood(output, target)
            per_example['objective'] = per_example['elbo'] + per_example['transform_log_likelihood']
        outputs = translate(params, source)
        per_example.update(transformation.scores(outputs, target))
        if transform_config.name == 'mask':  # Inpainting: known pixels kept, the rest filled.
            known = transforms.mask(jnp.ones_like(source), transform_config.mask, keys_of_pairs)
            completed = transformation.scores(known * source + (1 - known) * outputs, target)
            per_example.update({f'completed_{name}': value for name, value in completed.items()})
        identity = transformation.scores(source, target)
        per_example.update({f'identity_{name}': value for name, value in identity.items()})
        return base.masked_sums(per_example, batch['mask'])

    def transform(state, images, rng):
        """Outputs for model inputs `images` in [0, 1] (e.g. masked or noisy ones)."""
        del rng  # Decodes posterior means: deterministic outputs.
        return translate(state.params, images)

    def decode_latents(state, z, labels=None):
        del labels  # Unconditional.
        return mean_image(decode(state.params, z))

    def generate(state, rng, num, labels=None):
        return decode_latents(
            state, base.standard_normal(base.index_keys(rng, num), latent_dim), labels
        )

    def reconstruct(state, images, rng):
        del rng  # Decodes the posterior mean.
        mean, _ = encode(state.params, base.images_to_unit(images))
        return mean_image(decode(state.params, mean))

    return base.ModelDef(
        init=init,
        train_step=train_step,
        eval_step=eval_step,
        generate=generate,
        reconstruct=reconstruct,
        transform=transform,
        decode=decode_latents,
        latent_dim=latent_dim,
        image_range=(0.0, 1.0),
    )
