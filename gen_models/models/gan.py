"""GANs on DCGAN, SNGAN-style ResNet or Goodfellow et al.'s MLP nets (a ReLU generator, a
maxout discriminator with dropout), every variant a config switch.

Losses (`model.gan_loss`, `losses.discriminator_loss` / `generator_loss`): the min-max value
(Goodfellow et al. 2014) with G minimising log(1 - D(G(z))) ('minimax') or -log D(G(z))
('non_saturating'), the hinge loss ('hinge'), the Wasserstein critic ('wasserstein') and
least squares ('least_squares', LSGAN).
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

`model.gradient_penalty`, `model.r1_gamma` and `model.ema_decay` are traced into the compiled
programs (runs differing only in them share a compile and can be vectorised); whether each
adds its computation or state is decided by its switch (`model.use_gradient_penalty`,
`model.use_r1`, `model.use_ema`; by default on when the weight is not 0).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax
from ml_collections import config_dict

from gen_models import config as cfg
from gen_models import losses, nets, optim
from gen_models.models import base


def defaults() -> ml_collections.ConfigDict:
    """`config.model` of a GAN: DCGAN nets with the non-saturating loss."""
    model = ml_collections.ConfigDict()
    model.net = 'conv'  # 'conv' (DCGAN stacks) | 'mlp' (unconditional: ReLU G, maxout D) |
    # 'resnet' (SNGAN-style residual G and D)
    model.latent_dim = 16  # size of z
    model.width = 32  # conv: channels of the widest-resolution stage; resnet: G's blocks have 4x
    # and D's 2x this many channels (StudioGAN's convention)
    model.kernel_size = 4  # conv: kernel side of every conv layer
    model.conditional = False  # condition on the class labels (generate a requested class)
    model.hidden = (500,)  # mlp: G's hidden layer sizes
    model.activation = 'relu'  # mlp: G's 'tanh' | 'relu' | 'softplus' | 'leaky_relu'
    model.d_hidden = (240, 240)  # mlp: maxout units of each D hidden layer
    model.maxout_pieces = 5  # mlp: linear pieces each maxout unit takes the max of
    model.gan_loss = 'non_saturating'  # 'minimax' | 'non_saturating' (cross-entropy D,
    # G's loss) | 'hinge' | 'wasserstein' (a critic; pair it with a gradient penalty) |
    # 'least_squares' (LSGAN)
    model.d_dropout = 0.3  # conv: dropout rate after each D conv layer; mlp: at the input of
    # each D layer after the first
    model.d_input_dropout = 0.0  # mlp: dropout rate of D's input pixels
    model.g_init_range = 0.0  # mlp: G's weights start uniform in +-this; 0 = LeCun normal
    model.d_init_range = 0.0  # mlp: D's weights start uniform in +-this; 0 = LeCun normal
    model.gradient_penalty = 0.0  # weight of WGAN-GP's (||grad D||-1)^2 on interpolates
    model.use_gradient_penalty = config_dict.placeholder(bool)  # compute it; None: if weight != 0
    model.r1_gamma = 0.0  # R1 penalty gamma/2 * ||grad D(x)||^2 on real images
    model.use_r1 = config_dict.placeholder(bool)  # compute it; None: if r1_gamma != 0
    model.n_critic = 1  # D updates per G update, each on its own 1/n of the train batch
    model.simultaneous_update = False  # G's step uses D as it was before D's step on the
    # same batch (Goodfellow et al.'s code); False = D steps first, G against the new D
    model.spectral_norm = False  # spectral normalisation of every D layer
    model.ema_decay = 0.0  # decay of an EMA of G's weights that generates
    model.use_ema = config_dict.placeholder(bool)  # keep that EMA; None: if ema_decay != 0
    return model


RULES: dict[str, cfg.Rule] = {
    'model.net': cfg.choice('conv', 'mlp', 'resnet'),
    'model.latent_dim': cfg.at_least(1),
    'model.width': cfg.at_least(1),
    'model.kernel_size': cfg.at_least(1),
    'model.hidden': cfg.layer_sizes(),
    'model.activation': cfg.choice(*nets.ACTIVATIONS),
    'model.d_hidden': cfg.layer_sizes(),
    'model.maxout_pieces': cfg.at_least(1),
    'model.gan_loss': cfg.choice(*losses.GAN_LOSSES),
    'model.d_dropout': cfg.unit_interval(),
    'model.d_input_dropout': cfg.unit_interval(),
    'model.g_init_range': cfg.at_least(0),
    'model.d_init_range': cfg.at_least(0),
    'model.gradient_penalty': cfg.at_least(0),
    'model.r1_gamma': cfg.at_least(0),
    'model.n_critic': cfg.at_least(1),
    'model.ema_decay': cfg.unit_interval(),
}


def validate(config: ml_collections.ConfigDict, info: Any, num_devices: int) -> None:
    """Net-specific switches, the batch split into D updates, and what the data provides."""
    model = config.model
    if model.net == 'mlp':
        for key in ('conditional', 'spectral_norm'):
            if model[key]:
                raise cfg.ConfigError(f'model.{key}', model[key], "False with model.net='mlp'")
    if model.net == 'resnet' and model.d_dropout:
        raise cfg.ConfigError('model.d_dropout', model.d_dropout, "0 with model.net='resnet'")
    if config.train.batch_size % (model.n_critic * num_devices):
        raise cfg.ConfigError(
            'train.batch_size',
            config.train.batch_size,
            f'a multiple of model.n_critic x the device count ({model.n_critic} x {num_devices}): '
            'each device splits its batch into one sub-batch per D update',
        )
    if info is not None:
        base.check_labels(config, info)
        if model.net == 'conv':
            base.check_conv_images(config, info)


@dataclasses.dataclass(frozen=True, eq=False)
class GAN:
    """One GAN's networks and settings; its methods are the model's pure functions.

    `generator` syncs batch-norm statistics over DATA_AXIS (training inside a mapped step),
    `generator_init` is the same net without the axis (init, and generating outside one).
    """

    generator_init: base.Net
    generator: base.Net
    discriminator: base.Net
    tx: dict[str, optax.GradientTransformation]
    latent_dim: int
    kind: str  # model.gan_loss
    n_critic: int
    num_classes: int
    simultaneous: bool
    uses_dropout: bool
    gradient_penalty: Any  # weights: floats, or tracers inside compiled programs
    r1_gamma: Any
    ema_decay: Any
    use_gradient_penalty: bool
    use_r1: bool
    use_ema: bool

    def init(self, rng, batch) -> base.TrainState:
        g_rng, d_rng = jax.random.split(rng)
        labels = jnp.zeros((1,), jnp.int32)
        variables = {
            'generator': self.generator_init.init(
                g_rng, jnp.zeros((1, self.latent_dim)), labels, train=False
            ),
            'discriminator': self.discriminator.init(
                d_rng, base.images_to_symmetric(batch['image'][:1]), labels, train=False
            ),
        }
        if self.use_ema:
            variables['generator_ema'] = variables['generator']
        opt_state = {name: self.tx[name].init(variables[name]['params']) for name in self.tx}
        return _to_state(jnp.zeros((), jnp.int32), variables, opt_state)

    def draw_labels(self, keys):
        return jax.vmap(lambda key: jax.random.randint(key, (), 0, self.num_classes))(keys)

    def discriminate(self, d_vars, images, labels, keys, update_stats):
        """D's training outputs (B,) and its updated 'batch_stats' ({} without spectral norm)."""
        dropout = {'dropout_keys': keys} if self.uses_dropout else {}
        outputs, updates = self.discriminator.apply(
            d_vars,
            images,
            labels,
            train=True,
            update_stats=update_stats,
            mutable=['batch_stats'],
            **dropout,
        )
        return outputs[:, 0], updates

    def input_gradients(self, d_vars, images, labels, keys):
        """grad_x D(x) per example (examples are independent in D)."""
        return jax.grad(
            lambda x: jnp.sum(self.discriminate(d_vars, x, labels, keys, update_stats=False)[0])
        )(images)

    def discriminator_loss(self, params, d_vars, sub, fake):
        """D's loss on a sub-batch and its generated images, with the switched-on penalties:
        (loss, (real logits, fake logits, D's stat updates, penalties))."""
        real = sub['real']
        labels = (
            jnp.concatenate([sub['real_labels'], sub['fake_labels']]) if self.num_classes else None
        )
        keys = jnp.concatenate([sub['real_keys'], sub['fake_keys']])
        logits, updates = self.discriminate(
            {**d_vars, 'params': params}, jnp.concatenate([real, fake]), labels, keys, True
        )
        real_logits, fake_logits = jnp.split(logits, 2)
        loss = jnp.mean(losses.discriminator_loss(real_logits, fake_logits, self.kind))
        updated = {**d_vars, **updates, 'params': params}
        penalties = {}
        if self.use_gradient_penalty:
            mix = sub['mix'].reshape(-1, *(1,) * (real.ndim - 1))
            grads = self.input_gradients(
                updated, mix * real + (1 - mix) * fake, sub.get('real_labels'), sub['mix_keys']
            )
            penalties['gradient_penalty'] = jnp.mean(losses.gradient_penalty(grads))
            loss += self.gradient_penalty * penalties['gradient_penalty']
        if self.use_r1:
            grads = self.input_gradients(updated, real, sub.get('real_labels'), sub['real_keys'])
            penalties['r1_penalty'] = jnp.mean(losses.squared_gradient_norm(grads))
            loss += 0.5 * self.r1_gamma * penalties['r1_penalty']
        return loss, (real_logits, fake_logits, updates, penalties)

    def update_discriminator(self, d_vars, d_opt, sub, fake):
        """One D update on a sub-batch and its generated images: (d_vars, d_opt, metrics)."""
        (loss, (real_logits, fake_logits, updates, penalties)), grads = jax.value_and_grad(
            self.discriminator_loss, has_aux=True
        )(d_vars['params'], d_vars, sub, jax.lax.stop_gradient(fake))
        params, d_opt = base.apply_gradients(
            self.tx['discriminator'],
            jax.lax.pmean(grads, base.DATA_AXIS),
            d_opt,
            d_vars['params'],
        )
        metrics = {
            'd_loss': loss,
            **_score_metrics(real_logits, fake_logits, self.kind),
            **penalties,
        }
        return {**d_vars, **updates, 'params': params}, d_opt, metrics

    def generate_fake(self, g_params, g_stats, sub):
        fake, updates = self.generator.apply(
            {'params': g_params, 'batch_stats': g_stats},
            sub['z'],
            sub.get('fake_labels'),
            train=True,
            mutable=['batch_stats'],
        )
        return fake, updates.get('batch_stats', {})

    def step_inputs(self, batch, rng):
        """The step's per-example draws, split into `n_critic` sub-batches on a leading axis:
        sub-batch k holds the examples i with i % n_critic == k."""
        size = batch['image'].shape[0]
        rngs = dict(
            zip(('z', 'real', 'fake', 'g', 'labels', 'mix', 'mix_keys'), jax.random.split(rng, 7))
        )
        keys = {name: base.example_keys(key, size) for name, key in rngs.items()}
        inputs = {
            'real': base.images_to_symmetric(batch['image']),
            'z': base.standard_normal(keys['z'], self.latent_dim),
            'real_keys': keys['real'],
            'fake_keys': keys['fake'],
            'g_keys': keys['g'],
        }
        if self.num_classes:
            inputs['real_labels'] = batch['label']
            inputs['fake_labels'] = self.draw_labels(keys['labels'])
        if self.use_gradient_penalty:
            inputs['mix'] = jax.vmap(jax.random.uniform)(keys['mix'])
            inputs['mix_keys'] = keys['mix_keys']
        n = self.n_critic
        return jax.tree.map(lambda x: x.reshape(size // n, n, *x.shape[1:]).swapaxes(0, 1), inputs)

    def train_step(self, state, batch, rng):
        subs = self.step_inputs(batch, rng)
        g_vars = _variables(state, 'generator')
        d_vars = _variables(state, 'discriminator')
        d_opt = state.opt_state['discriminator']
        g_stats = g_vars.get('batch_stats', {})  # {} for nets without batch norm
        # A Python loop, not lax.scan: XLA-CPU runs the convolutions of a loop body an order
        # of magnitude slower (docs/benchmarks.md).
        for k in range(self.n_critic - 1):
            sub = jax.tree.map(lambda x, k=k: x[k], subs)
            fake, g_stats = self.generate_fake(g_vars['params'], g_stats, sub)
            d_vars, d_opt, _ = self.update_discriminator(d_vars, d_opt, sub, fake)
        last = jax.tree.map(lambda x: x[-1], subs)
        fake, generator_vjp, g_stats = jax.vjp(
            lambda params: self.generate_fake(params, g_stats, last), g_vars['params'], has_aux=True
        )
        d_before = d_vars
        d_vars, d_opt, metrics = self.update_discriminator(d_vars, d_opt, last, fake)
        # Simultaneous: G steps against D as it was before D's step, through the dropout masks
        # of D's own pass on these fakes (Goodfellow et al.'s code); else against the new D.
        g_critic, g_keys = (
            (d_before, last['fake_keys']) if self.simultaneous else (d_vars, last['g_keys'])
        )

        def g_loss_fn(images):
            logits, _ = self.discriminate(g_critic, images, last.get('fake_labels'), g_keys, False)
            return jnp.mean(losses.generator_loss(logits, self.kind))

        g_loss, fake_grads = jax.value_and_grad(g_loss_fn)(fake)
        (g_grads,) = generator_vjp(fake_grads)
        g_params, g_opt = base.apply_gradients(
            self.tx['generator'],
            jax.lax.pmean(g_grads, base.DATA_AXIS),
            state.opt_state['generator'],
            g_vars['params'],
        )
        variables = {
            'generator': {'params': g_params, **({'batch_stats': g_stats} if g_stats else {})},
            'discriminator': d_vars,
        }
        if self.use_ema:
            variables['generator_ema'] = self.ema_update(
                _variables(state, 'generator_ema'), variables['generator'], state.step
            )
        new_state = _to_state(
            state.step + 1, variables, {'generator': g_opt, 'discriminator': d_opt}
        )
        return new_state, jax.lax.pmean({**metrics, 'g_loss': g_loss}, base.DATA_AXIS)

    def ema_update(self, average, current, step):
        """average <- d * average + (1 - d) * current for G's weights and batch statistics,
        d = min(ema_decay, (1 + t) / (10 + t)) at G update t (TF's ExponentialMovingAverage
        with num_updates: early averages are not dominated by the initial weights)."""
        t = step.astype(jnp.float32)
        decay = jnp.minimum(self.ema_decay, (1 + t) / (10 + t))
        return jax.tree.map(lambda a, c: decay * a + (1 - decay) * c, average, current)

    def decode(self, state, z, labels=None):
        if self.num_classes and labels is None:
            raise ValueError('a class-conditional GAN decodes z given labels')
        return self.generator_init.apply(
            _variables(state, 'generator_ema' if self.use_ema else 'generator'),
            z,
            labels if self.num_classes else None,
            train=False,
        )

    def eval_step(self, state, batch, rng):
        z_rng, label_rng = jax.random.split(rng)
        real = base.images_to_symmetric(batch['image'])
        size = real.shape[0]
        fake_labels = (
            self.draw_labels(base.example_keys(label_rng, size)) if self.num_classes else None
        )
        fake = self.decode(
            state,
            base.standard_normal(base.example_keys(z_rng, size), self.latent_dim),
            fake_labels,
        )
        labels = jnp.concatenate([batch['label'], fake_labels]) if self.num_classes else None
        logits = self.discriminator.apply(
            _variables(state, 'discriminator'),
            jnp.concatenate([real, fake]),
            labels,
            train=False,
        )[:, 0]
        real_logits, fake_logits = jnp.split(logits, 2)
        per_example = {
            'd_loss': losses.discriminator_loss(real_logits, fake_logits, self.kind),
            'g_loss': losses.generator_loss(fake_logits, self.kind),
            'd_accuracy_real': (real_logits > 0).astype(jnp.float32),
            'd_accuracy_fake': (fake_logits < 0).astype(jnp.float32),
        }
        return base.masked_sums(per_example, batch['mask'])

    def generate(self, state, rng, num, labels=None):
        z_rng, label_rng = jax.random.split(rng)
        if self.num_classes and labels is None:
            labels = self.draw_labels(base.index_keys(label_rng, num))
        z = base.standard_normal(base.index_keys(z_rng, num), self.latent_dim)
        return self.decode(state, z, labels)


def build(config, info) -> base.ModelDef:
    """The GAN `ModelDef` for `config` on a dataset described by `info`."""
    model_config = config.model
    n_critic = model_config.n_critic
    num_classes = info.num_classes if model_config.conditional else 0
    num_steps = config.train.num_steps
    wrap = base.compute_dtype_wrapper(config)
    generator_init, generator = (
        wrap(_generator(model_config, info.image_shape, num_classes, axis_name))
        for axis_name in (None, base.DATA_AXIS)
    )
    gan = GAN(
        generator_init=generator_init,
        generator=generator,
        discriminator=wrap(_discriminator(model_config, num_classes)),
        tx={
            'generator': optim.make_optimizer(config.optim, config.lr, num_steps),
            'discriminator': optim.make_optimizer(
                config.optim, config.lr * config.optim.d_lr_multiplier, num_steps, n_critic
            ),
        },
        latent_dim=model_config.latent_dim,
        kind=model_config.gan_loss,
        n_critic=n_critic,
        num_classes=num_classes,
        simultaneous=model_config.simultaneous_update,
        uses_dropout=model_config.net != 'resnet',  # conv and maxout D drop out at their rates
        gradient_penalty=model_config.gradient_penalty,
        r1_gamma=model_config.r1_gamma,
        ema_decay=model_config.ema_decay,
        use_gradient_penalty=base.switch(
            model_config.use_gradient_penalty, model_config.gradient_penalty
        ),
        use_r1=base.switch(model_config.use_r1, model_config.r1_gamma),
        use_ema=base.switch(model_config.use_ema, model_config.ema_decay),
    )
    image_range = (-1.0, 1.0)
    return base.ModelDef(
        init=gan.init,
        train_step=gan.train_step,
        eval_step=gan.eval_step,
        generate=gan.generate,
        decode=gan.decode,
        latent_dim=gan.latent_dim,
        num_classes=num_classes,
        image_range=image_range,
        summary_keys=('d_loss', 'g_loss'),
        sample_grids=base.standard_grids(gan.generate, None, num_classes, image_range),
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
    """D's mean probabilities (cross-entropy losses) or raw outputs (hinge, critic, least
    squares) on real and generated images, and how often they fall on the right side (of 0;
    of 1/2 between least squares' targets 0 and 1)."""
    if kind in losses.GENERATOR_LOSSES:
        scores = {
            'd_real': jnp.mean(jax.nn.sigmoid(real_logits)),
            'd_fake': jnp.mean(jax.nn.sigmoid(fake_logits)),
        }
    else:
        scores = {'d_real_output': jnp.mean(real_logits), 'd_fake_output': jnp.mean(fake_logits)}
    threshold = 0.5 if kind == 'least_squares' else 0.0
    return {
        **scores,
        'd_accuracy_real': jnp.mean(real_logits > threshold),
        'd_accuracy_fake': jnp.mean(fake_logits < threshold),
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


FAMILY = base.Family(
    name='gan',
    defaults=defaults,
    build=build,
    rules=RULES,
    validate=validate,
    traced=('model.gradient_penalty', 'model.r1_gamma', 'model.ema_decay'),
    toggles={
        'model.use_gradient_penalty': 'model.gradient_penalty',
        'model.use_r1': 'model.r1_gamma',
        'model.use_ema': 'model.ema_decay',
    },
    reads=('optim.d_lr_multiplier',),
)
