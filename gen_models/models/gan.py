"""GANs on DCGAN, SNGAN-style ResNet or Goodfellow et al.'s MLP nets (a ReLU generator, a
maxout discriminator with dropout), every variant a config switch.

Losses (`model.gan_loss`, `losses.discriminator_loss` / `generator_loss`): the min-max value
(Goodfellow et al. 2014) with G minimising log(1 - D(G(z))) ('minimax') or -log D(G(z))
('non_saturating'), the hinge loss ('hinge') and the Wasserstein critic ('wasserstein').
Regularisers of D: WGAN-GP's gradient penalty on random interpolates
(`model.gradient_penalty`), R1 on real images (`model.r1_gamma`), spectral normalisation
(`model.spectral_norm`). `model.n_critic` D updates per G update; an exponential moving
average of G (`model.ema_decay`) generates when on; `model.conditional` trains a projection
discriminator and a generator with class-conditional batch norm.

One train step is one G update. Its batch splits into `n_critic` sub-batches, example i of
the device's batch going to sub-batch i % n_critic (so sub-batch k holds the same examples
of the global batch on any number of devices); D takes one update on each sub-batch, as in
compare_gan (StudioGAN draws a fresh batch per D update: the same data per D update, counted
in train steps). The last D update shares G's forward pass with the G update (reference
DCGAN implementations do this with one D update per step), which uses that sub-batch's z.
So `train.batch_size` is n_critic times D's batch and G's batch is 1/n_critic of it.

Real and generated images go through D as one call on their concatenation; D has no batch
norm, and example i's dropout masks come from a key folded from its global index, so
neither depends on the batch's split over devices. The spectral-norm power-iteration
vectors are D's 'batch_stats', advanced once per D update (identically on every device: they
are functions of the replicated weights). The EMA generator is the network 'generator_ema'
of the state's params and batch_stats.

`model.gradient_penalty`, `model.r1_gamma` and `model.ema_decay` add computation or state when
non-zero, so they are config structure rather than traced hyperparameters
(`experiments/programs.py`): runs differing in them compile their own steps.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gen_models import losses, nets, optim
from gen_models.models import base


def build(config, info) -> base.ModelDef:
    """The GAN `ModelDef` for `config` on a dataset described by `info`."""
    model_config = config.model
    latent_dim, kind, n_critic = (
        model_config.latent_dim,
        model_config.gan_loss,
        model_config.n_critic,
    )
    num_classes = info.num_classes if model_config.conditional else 0
    uses_ema = model_config.ema_decay > 0
    simultaneous = model_config.simultaneous_update
    uses_dropout = model_config.net != 'resnet'  # conv and maxout D drop out at their rates
    generator_init, generator = (
        _generator(model_config, info.image_shape, num_classes, axis_name)
        for axis_name in (None, base.DATA_AXIS)
    )
    discriminator = _discriminator(model_config, num_classes)
    num_steps = config.train.num_steps
    tx = {
        'generator': optim.make_optimizer(config.optim, config.lr, num_steps),
        'discriminator': optim.make_optimizer(
            config.optim, config.lr * config.optim.d_lr_multiplier, num_steps, n_critic
        ),
    }

    def init(rng, batch):
        g_rng, d_rng = jax.random.split(rng)
        labels = jnp.zeros((1,), jnp.int32)
        variables = {
            'generator': generator_init.init(
                g_rng, jnp.zeros((1, latent_dim)), labels, train=False
            ),
            'discriminator': discriminator.init(
                d_rng, base.images_to_symmetric(batch['image'][:1]), labels, train=False
            ),
        }
        if uses_ema:
            variables['generator_ema'] = variables['generator']
        opt_state = {name: tx[name].init(variables[name]['params']) for name in tx}
        return _to_state(jnp.zeros((), jnp.int32), variables, opt_state)

    def draw_labels(keys):
        return jax.vmap(lambda key: jax.random.randint(key, (), 0, num_classes))(keys)

    def discriminate(d_vars, images, labels, keys, update_stats):
        """D's training outputs (B,) and its updated 'batch_stats' ({} without spectral norm)."""
        dropout = {'dropout_keys': keys} if uses_dropout else {}
        outputs, updates = discriminator.apply(
            d_vars,
            images,
            labels,
            train=True,
            update_stats=update_stats,
            mutable=['batch_stats'],
            **dropout,
        )
        return outputs[:, 0], updates

    def input_gradients(d_vars, images, labels, keys):
        """grad_x D(x) per example (examples are independent in D)."""
        return jax.grad(
            lambda x: jnp.sum(discriminate(d_vars, x, labels, keys, update_stats=False)[0])
        )(images)

    def update_discriminator(d_vars, d_opt, sub, fake):
        """One D update on a sub-batch and its generated images: (d_vars, d_opt, metrics)."""
        real, fake = sub['real'], jax.lax.stop_gradient(fake)
        labels = jnp.concatenate([sub['real_labels'], sub['fake_labels']]) if num_classes else None
        keys = jnp.concatenate([sub['real_keys'], sub['fake_keys']])

        def loss_fn(params):
            logits, updates = discriminate(
                {**d_vars, 'params': params}, jnp.concatenate([real, fake]), labels, keys, True
            )
            real_logits, fake_logits = jnp.split(logits, 2)
            loss = jnp.mean(losses.discriminator_loss(real_logits, fake_logits, kind))
            updated = {**d_vars, **updates, 'params': params}
            penalties = {}
            if model_config.gradient_penalty:
                mix = sub['mix'].reshape(-1, *(1,) * (real.ndim - 1))
                grads = input_gradients(
                    updated, mix * real + (1 - mix) * fake, sub.get('real_labels'), sub['mix_keys']
                )
                penalties['gradient_penalty'] = jnp.mean(losses.gradient_penalty(grads))
                loss += model_config.gradient_penalty * penalties['gradient_penalty']
            if model_config.r1_gamma:
                grads = input_gradients(updated, real, sub.get('real_labels'), sub['real_keys'])
                penalties['r1_penalty'] = jnp.mean(losses.squared_gradient_norm(grads))
                loss += 0.5 * model_config.r1_gamma * penalties['r1_penalty']
            return loss, (real_logits, fake_logits, updates, penalties)

        (loss, (real_logits, fake_logits, updates, penalties)), grads = jax.value_and_grad(
            loss_fn, has_aux=True
        )(d_vars['params'])
        params, d_opt = base.apply_gradients(
            tx['discriminator'],
            jax.lax.pmean(grads, base.DATA_AXIS),
            d_opt,
            d_vars['params'],
        )
        metrics = {
            'd_loss': loss,
            **_score_metrics(real_logits, fake_logits, kind),
            **penalties,
        }
        return {**d_vars, **updates, 'params': params}, d_opt, metrics

    def generate_fake(g_params, g_stats, sub):
        fake, updates = generator.apply(
            {'params': g_params, 'batch_stats': g_stats},
            sub['z'],
            sub.get('fake_labels'),
            train=True,
            mutable=['batch_stats'],
        )
        return fake, updates.get('batch_stats', {})

    def train_step(state, batch, rng):
        size = batch['image'].shape[0]
        rngs = dict(
            zip(('z', 'real', 'fake', 'g', 'labels', 'mix', 'mix_keys'), jax.random.split(rng, 7))
        )
        keys = {name: base.example_keys(key, size) for name, key in rngs.items()}
        inputs = {
            'real': base.images_to_symmetric(batch['image']),
            'z': base.standard_normal(keys['z'], latent_dim),
            'real_keys': keys['real'],
            'fake_keys': keys['fake'],
            'g_keys': keys['g'],
        }
        if num_classes:
            inputs['real_labels'] = batch['label']
            inputs['fake_labels'] = draw_labels(keys['labels'])
        if model_config.gradient_penalty:
            inputs['mix'] = jax.vmap(jax.random.uniform)(keys['mix'])
            inputs['mix_keys'] = keys['mix_keys']
        # Sub-batch k: the examples i with i % n_critic == k, on a leading axis.
        subs = jax.tree.map(
            lambda x: x.reshape(size // n_critic, n_critic, *x.shape[1:]).swapaxes(0, 1), inputs
        )
        g_vars = _variables(state, 'generator')

        d_vars = _variables(state, 'discriminator')
        d_opt = state.opt_state['discriminator']
        g_stats = g_vars.get('batch_stats', {})  # {} for nets without batch norm
        # A Python loop, not lax.scan: XLA-CPU runs the convolutions of a loop body an order
        # of magnitude slower (n_critic=2 DCGAN on CIFAR-10: 462 -> 36 ms per step).
        for k in range(n_critic - 1):
            sub = jax.tree.map(lambda x, k=k: x[k], subs)
            fake, g_stats = generate_fake(g_vars['params'], g_stats, sub)
            d_vars, d_opt, _ = update_discriminator(d_vars, d_opt, sub, fake)
        last = jax.tree.map(lambda x: x[-1], subs)
        fake, generator_vjp, g_stats = jax.vjp(
            lambda params: generate_fake(params, g_stats, last), g_vars['params'], has_aux=True
        )
        d_before = d_vars
        d_vars, d_opt, metrics = update_discriminator(d_vars, d_opt, last, fake)
        # Simultaneous: G steps against D as it was before D's step, through the dropout masks
        # of D's own pass on these fakes (Goodfellow et al.'s code); else against the new D.
        g_critic, g_keys = (
            (d_before, last['fake_keys']) if simultaneous else (d_vars, last['g_keys'])
        )

        def g_loss_fn(images):
            logits, _ = discriminate(g_critic, images, last.get('fake_labels'), g_keys, False)
            return jnp.mean(losses.generator_loss(logits, kind))

        g_loss, fake_grads = jax.value_and_grad(g_loss_fn)(fake)
        (g_grads,) = generator_vjp(fake_grads)
        g_params, g_opt = base.apply_gradients(
            tx['generator'],
            jax.lax.pmean(g_grads, base.DATA_AXIS),
            state.opt_state['generator'],
            g_vars['params'],
        )
        variables = {
            'generator': {'params': g_params, **({'batch_stats': g_stats} if g_stats else {})},
            'discriminator': d_vars,
        }
        if uses_ema:
            variables['generator_ema'] = ema_update(
                _variables(state, 'generator_ema'), variables['generator'], state.step
            )
        new_state = _to_state(
            state.step + 1, variables, {'generator': g_opt, 'discriminator': d_opt}
        )
        return new_state, jax.lax.pmean({**metrics, 'g_loss': g_loss}, base.DATA_AXIS)

    def ema_update(average, current, step):
        """average <- d * average + (1 - d) * current for G's weights and batch statistics,
        d = min(ema_decay, (1 + t) / (10 + t)) at G update t (TF's ExponentialMovingAverage
        with num_updates: early averages are not dominated by the initial weights)."""
        t = step.astype(jnp.float32)
        decay = jnp.minimum(model_config.ema_decay, (1 + t) / (10 + t))
        return jax.tree.map(lambda a, c: decay * a + (1 - decay) * c, average, current)

    def decode(state, z, labels=None):
        if num_classes and labels is None:
            raise ValueError('a class-conditional GAN decodes z given labels')
        return generator_init.apply(
            _variables(state, 'generator_ema' if uses_ema else 'generator'),
            z,
            labels if num_classes else None,
            train=False,
        )

    def eval_step(state, batch, rng):
        z_rng, label_rng = jax.random.split(rng)
        real = base.images_to_symmetric(batch['image'])
        size = real.shape[0]
        fake_labels = draw_labels(base.example_keys(label_rng, size)) if num_classes else None
        fake = decode(
            state, base.standard_normal(base.example_keys(z_rng, size), latent_dim), fake_labels
        )
        labels = jnp.concatenate([batch['label'], fake_labels]) if num_classes else None
        logits = discriminator.apply(
            _variables(state, 'discriminator'),
            jnp.concatenate([real, fake]),
            labels,
            train=False,
        )[:, 0]
        real_logits, fake_logits = jnp.split(logits, 2)
        per_example = {
            'd_loss': losses.discriminator_loss(real_logits, fake_logits, kind),
            'g_loss': losses.generator_loss(fake_logits, kind),
            'd_accuracy_real': (real_logits > 0).astype(jnp.float32),
            'd_accuracy_fake': (fake_logits < 0).astype(jnp.float32),
        }
        return base.masked_sums(per_example, batch['mask'])

    def generate(state, rng, num, labels=None):
        z_rng, label_rng = jax.random.split(rng)
        if num_classes and labels is None:
            labels = draw_labels(base.index_keys(label_rng, num))
        return decode(state, base.standard_normal(base.index_keys(z_rng, num), latent_dim), labels)

    return base.ModelDef(
        init=init,
        train_step=train_step,
        eval_step=eval_step,
        generate=generate,
        decode=decode,
        latent_dim=latent_dim,
        num_classes=num_classes,
        image_range=(-1.0, 1.0),
    )


def _generator(model_config, image_shape, num_classes: int, axis_name: str | None):
    if model_config.net == 'mlp':
        return nets.MLPGenerator(
            hidden=model_config.hidden,
            image_shape=image_shape,
            activation=model_config.activation,
            init_range=model_config.g_init_range,
        )
    if model_config.net == 'resnet':
        return nets.ResNetGenerator(
            image_shape=image_shape,
            width=model_config.width,
            num_classes=num_classes,
            axis_name=axis_name,
        )
    return nets.UpConvStack(
        image_shape=image_shape,
        width=model_config.width,
        kernel_size=model_config.kernel_size,
        use_batch_norm=True,
        output_activation='tanh',
        axis_name=axis_name,
        num_classes=num_classes,
    )


def _discriminator(model_config, num_classes: int):
    if model_config.net == 'mlp':
        return nets.MaxoutDiscriminator(
            hidden=model_config.d_hidden,
            pieces=model_config.maxout_pieces,
            input_dropout=model_config.d_input_dropout,
            dropout_rate=model_config.d_dropout,
            init_range=model_config.d_init_range,
        )
    if model_config.net == 'resnet':
        return nets.ResNetDiscriminator(
            width=model_config.width,
            spectral_norm=model_config.spectral_norm,
            num_classes=num_classes,
        )
    return nets.DownConvStack(
        outputs=1,
        width=model_config.width,
        kernel_size=model_config.kernel_size,
        dropout_rate=model_config.d_dropout,
        spectral_norm=model_config.spectral_norm,
        num_classes=num_classes,
    )


def _score_metrics(real_logits: jax.Array, fake_logits: jax.Array, kind: str) -> base.Metrics:
    """D's mean probabilities (cross-entropy losses) or raw outputs (hinge, critic) on real
    and generated images, and how often their sign is right."""
    if kind in losses.GENERATOR_LOSSES:
        scores = {
            'd_real': jnp.mean(jax.nn.sigmoid(real_logits)),
            'd_fake': jnp.mean(jax.nn.sigmoid(fake_logits)),
        }
    else:
        scores = {'d_real_output': jnp.mean(real_logits), 'd_fake_output': jnp.mean(fake_logits)}
    return {
        **scores,
        'd_accuracy_real': jnp.mean(real_logits > 0),
        'd_accuracy_fake': jnp.mean(fake_logits < 0),
    }


def _variables(state: base.TrainState, name: str) -> dict:
    """Network `name`'s flax variables: its params, and its batch_stats where it has some."""
    stats = {'batch_stats': state.batch_stats[name]} if name in state.batch_stats else {}
    return {'params': state.params[name], **stats}


def _to_state(step: jax.Array, variables: dict, opt_state: dict) -> base.TrainState:
    """A TrainState of networks' flax variables (a batch_stats entry only where there are)."""
    return base.TrainState(
        step=step,
        params={name: v['params'] for name, v in variables.items()},
        batch_stats={name: v['batch_stats'] for name, v in variables.items() if 'batch_stats' in v},
        opt_state=opt_state,
    )
