"""A small supervised classifier, trained like any model, used as a feature network.

Fast dataset metrics (FID/KID in its feature space, the classifier score) need a network
trained on the dataset itself; this family trains one with the same loop, checkpoints and
logs as the generative models: `launch.py --config configs/classifier.py:mnist`. It generates
nothing (`generate` is None); its `classify` is what evaluation loads from its workdir
(`eval.classifier_workdir`). Conv widths: `model.width`, doubled per stage (two stages);
feature size: `model.hidden[0]`.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax

from gen_models import config as cfg
from gen_models import optim
from gen_models.models import base
from gen_models.nets import precision
from gen_models.nets.classifier import Classifier


def defaults() -> ml_collections.ConfigDict:
    """`config.model` of the classifier."""
    model = ml_collections.ConfigDict()
    model.width = 32  # channels of the first conv stage (doubled in the second)
    model.hidden = (500,)  # (feature size,): the penultimate layer, the feature space
    return model


RULES: dict[str, cfg.Rule] = {
    'model.width': cfg.at_least(1),
    'model.hidden': cfg.layer_sizes(),
}


def validate(config: ml_collections.ConfigDict, info: Any, num_devices: int) -> None:
    del num_devices
    if info is not None and info.num_classes < 2:
        raise cfg.ConfigError(
            'dataset.name', config.dataset.name, 'a dataset with class labels to classify'
        )


def make_net(config, info, compute_dtype: str = 'float32') -> base.Net:
    """The classifier a config describes, computing in `compute_dtype`."""
    width = config.model.width
    net = Classifier(
        num_classes=info.num_classes,
        widths=(width, 2 * width),
        feature_dim=config.model.hidden[0],
        dtype=precision.COMPUTE_DTYPES[compute_dtype],
    )
    return precision.with_compute_dtype(net, compute_dtype)


def build(config, info) -> base.ModelDef:
    """The classifier `ModelDef` for `config` on a labelled dataset described by `info`."""
    net = make_net(config, info, config.train.compute_dtype)
    features_net = make_net(config, info)  # features and scores in float32 whatever trained
    tx = optim.make_optimizer(config.optim, config.lr, config.train.num_steps)

    def init(rng, batch):
        params = {'classifier': net.init(rng, batch['image'][:1])['params']}
        return base.TrainState(
            step=jnp.zeros((), jnp.int32),
            params=params,
            batch_stats={},
            opt_state={'classifier': tx.init(params)},
        )

    def classify(state, images):
        return features_net.apply({'params': state.params['classifier']}, images)

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
        classify=classify,
        image_range=(0.0, 255.0),  # takes uint8 pixels
        summary_keys=('loss', 'accuracy'),
    )


FAMILY = base.Family(
    name='classifier', defaults=defaults, build=build, rules=RULES, validate=validate
)
