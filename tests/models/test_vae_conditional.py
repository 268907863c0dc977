"""A conditional VAE trained on MNIST draws digits of the requested class: a classifier
trained here on real MNIST recognises its class-conditional samples far above chance."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
from etils import epath
from PIL import Image

from configs import cvae_mnist
from experiments import runtime, train
from gen_models.data.builders.idx import read_idx

NUM_CLASSES = 10


def _softmax_regression(images: np.ndarray, labels: np.ndarray, steps: int = 300):
    """Multinomial logistic regression on pixels in [0, 1], full-batch Adam; returns a
    function images -> predicted classes."""
    x = jnp.asarray(images.reshape(len(images), -1), jnp.float32) / 255
    tx = optax.adam(0.05)

    def loss(params):
        logits = x @ params['w'] + params['b']
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

    def step(carry, _):
        params, opt_state = carry
        updates, opt_state = tx.update(jax.grad(loss)(params), opt_state)
        return (optax.apply_updates(params, updates), opt_state), None

    params = {'w': jnp.zeros((x.shape[1], NUM_CLASSES)), 'b': jnp.zeros(NUM_CLASSES)}
    (params, _), _ = jax.jit(lambda c: jax.lax.scan(step, c, None, steps))(
        (params, tx.init(params))
    )
    return lambda images: np.asarray(
        jnp.argmax(images.reshape(len(images), -1) @ params['w'] + params['b'], axis=-1)
    )


def test_class_conditional_samples_are_recognised_as_their_class(data_dir, shared_data, tmp_path):
    config = cvae_mnist.get_config()
    config.dataset.data_dir = data_dir
    config.dataset.source_dir = str(shared_data)
    config.model.update({'hidden': (128,), 'latent_dim': 2, 'activation': 'relu'})
    config.lr = 3e-3
    config.train.update(
        num_steps=300,
        log_every=100,
        eval_every=300,
        checkpoint_every=300,
        sample_every=300,
        eval_examples=256,
        num_samples=30,
        progress_bar=False,
    )
    results = train.train_and_evaluate(config, tmp_path)
    assert np.isfinite(results['metrics']['eval/elbo'])
    # The sample grid: one row per class, num_samples // classes columns.
    grid = Image.open(tmp_path / 'samples' / 'samples_0000300.png')
    assert grid.size == (2 + 3 * 30, 2 + 10 * 30)

    mnist = epath.Path(shared_data) / 'mnist'
    images = read_idx(mnist / 'train-images-idx3-ubyte.gz')[:12000]
    labels = read_idx(mnist / 'train-labels-idx1-ubyte.gz')[:12000].astype(np.int32)
    classify = _softmax_regression(images[:10000], labels[:10000])
    assert np.mean(classify(images[10000:] / 255) == labels[10000:]) > 0.85

    run = runtime.prepare(config)
    state, _ = runtime.restore_latest(run, tmp_path)
    wanted = np.repeat(np.arange(NUM_CLASSES, dtype=np.int32), 20)
    samples = jax.jit(run.model.generate, static_argnums=2)(
        state, jax.random.key(0), len(wanted), wanted
    )
    accuracy = np.mean(classify(np.asarray(samples)) == wanted)
    assert accuracy > 0.5, accuracy  # chance: 0.1
