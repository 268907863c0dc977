"""A small supervised classifier, trained like any model, used as a feature network.

Fast dataset metrics (FID/KID in its feature space, the classifier score) need a network
trained on the dataset itself; this family trains one with the same loop, checkpoints and
logs as the generative models: `launch.py --config configs/classifier_mnist.py`. It generates
nothing (`generate` is None). Conv widths: `model.width`, doubled per stage (two stages);
feature size: `model.hidden[0]`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from gen_models import optim
from gen_models.models import base
from gen_models.nets.classifier import Classifier


def make_net(config, info) -> Classifier:
    """The classifier a config describes (also how evaluation rebuilds it)."""
    width = config.model.width
    return Classifier(
        num_classes=info.num_classes, widths=(width, 2 * width), feature_dim=config.model.hidden[0]
    )


def build(config, info) -> base.ModelDef:
    """The classifier `ModelDef` for `config` on a labelled dataset described by `info`."""
    if info.num_classes < 2:
        raise ValueError(f'{config.dataset.name} has no class labels to train a classifier on')
    net = make_net(config, info)
    tx = optim.make_optimizer(config.optim, config.lr, config.train.num_steps)

    def init(rng, batch):
        params = {'classifier': net.init(rng, batch['image'][:1])['params']}
        return base.TrainState(
            step=jnp.zeros((), jnp.int32),
            params=params,
            batch_stats={},
            opt_state={'classifier': tx.init(params)},
        )

    def per_example(params, batch):
        _, logits = net.apply({'params': params['classifier']}, batch['image'])
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch['label'])
        accuracy = (jnp.argmax(logits, -1) == batch['label']).astype(jnp.float32)
        return {'loss': loss, 'accuracy': accuracy}

    def train_step(state, batch, rng):
        del rng  # Deterministic: no dropout or augmentation.

        def loss_fn(params):
            metrics = per_example(params, batch)
            return jnp.mean(metrics['loss']), metrics

        (_, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        grads = jax.lax.pmean(grads, base.DATA_AXIS)
        params, opt_state = base.apply_gradients(
            tx, grads, state.opt_state['classifier'], state.params
        )
        means = {name: jnp.mean(value) for name, value in metrics.items()}
        return (
            state.replace(step=state.step + 1, params=params, opt_state={'classifier': opt_state}),
            jax.lax.pmean(means, base.DATA_AXIS),
        )

    def eval_step(state, batch, rng):
        del rng
        return base.masked_sums(per_example(state.params, batch), batch['mask'])

    return base.ModelDef(
        init=init,
        train_step=train_step,
        eval_step=eval_step,
        generate=None,
        image_range=(0.0, 255.0),  # takes uint8 pixels
    )
