"""Feature networks for FID/KID, batched feature extraction, cached reference features.

A `FeatureNet` maps uint8 images to feature vectors and is named by the sha256 of its weights,
which every cache key and result carries: numbers computed with other weights never mix.
Generated images are quantised to uint8 first, so that they are measured as the saved images
would be.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import ml_collections
import numpy as np
from flax import traverse_util

from gen_models import config as cfg
from gen_models import data
from gen_models.metrics.registry import EvalContext, Metric, Protocols, Values
from gen_models.nets import inception

STATS_DIR_ENV = 'GEN_MODELS_STATS_DIR'
DEFAULT_STATS_DIR = '~/.cache/gen_models/reference_features'
FEATURE_NETS = ('inception', 'classifier')


def eval_defaults() -> ml_collections.ConfigDict:
    """The `config.eval` keys of the metrics computed in a feature network's space."""
    evaluation = ml_collections.ConfigDict()
    evaluation.reference_split = 'train'  # fid/kid/precision_recall: real images compared
    evaluation.reference_examples = 0  # fid/kid/precision_recall: first N of that split; 0 = all
    evaluation.inception_path = ''  # '' -> $GEN_MODELS_INCEPTION, else
    # ../shared/models/fid_inception/fid_inception_v3_2015_12_05.npz beside the repository
    evaluation.stats_dir = ''  # reference-feature cache; '' -> $GEN_MODELS_STATS_DIR or
    # ~/.cache/gen_models/reference_features
    evaluation.feature_net = 'inception'  # fid/kid/precision_recall: 'inception' | 'classifier'
    evaluation.classifier_workdir = ''  # workdir of a trained configs/classifier.py run:
    # the 'classifier' feature net, the classifier score and class accuracy
    evaluation.feature_batch_size = 32  # images per feature-network call
    return evaluation


EVAL_RULES: dict[str, cfg.Rule] = {
    'eval.feature_net': cfg.choice(*FEATURE_NETS),
    'eval.reference_examples': ((lambda v: v == 0 or v >= 2), '0 (all) or >= 2'),
    'eval.feature_batch_size': cfg.at_least(1),
}


def reference_splits(config: ml_collections.ConfigDict) -> dict[str, str]:
    return {'eval.reference_split': config.eval.reference_split}


@dataclasses.dataclass(frozen=True)
class FeatureNet:
    """A jitted map from uint8 (batch_size, H, W, C) images to (batch_size, dim) features."""

    name: str
    checksum: str
    dim: int
    batch_size: int
    apply: Callable[[jax.Array], jax.Array]

    def protocol(self) -> dict[str, str]:
        return {'feature_net': self.name, 'feature_net_sha256': self.checksum}


def inception_net(path: str = '', batch_size: int = 32) -> FeatureNet:
    """The standard FID Inception (pool3) from `inception.inception_path(path)`: its weights
    passed to `inception.feature_fn()` as arguments."""
    weights = inception.inception_path(path)
    if not weights.is_file():
        raise FileNotFoundError(
            f'FID Inception weights not found at {weights}: set config.eval.inception_path or '
            f'${inception.INCEPTION_ENV} (docs/evaluation.md says how to obtain the file)'
        )
    params = inception.load_params(weights)
    features = inception.feature_fn()
    return FeatureNet(
        name='inception-2015-12-05/pool3',
        checksum=inception.file_checksum(weights),
        dim=inception.FEATURE_DIM,
        batch_size=batch_size,
        apply=lambda images: features(params, images),
    )


def params_checksum(params: Any) -> str:
    """sha256 (hex) over a params tree's paths, dtypes, shapes and bytes, in path order."""
    digest = hashlib.sha256()
    for path, value in sorted(traverse_util.flatten_dict(params, sep='/').items()):
        value = np.ascontiguousarray(np.asarray(value))
        digest.update(f'{path}:{value.dtype}:{value.shape}'.encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def classifier_nets(
    classify: Callable[[Any, jax.Array], tuple[jax.Array, jax.Array]],
    state: Any,
    image_shape: tuple[int, ...],
    name: str,
    batch_size: int,
) -> tuple[FeatureNet, FeatureNet]:
    """A trained classifier (`ModelDef.classify` and its state) as two nets sharing one
    checksum, of the state's parameters: its penultimate features and its probabilities."""
    checksum = params_checksum(state.params)
    example = jax.ShapeDtypeStruct((1, *image_shape), np.uint8)
    features, logits = jax.eval_shape(lambda x: classify(state, x), example)

    def net(suffix: str, fn: Callable, dim: int) -> FeatureNet:
        return FeatureNet(f'{name}/{suffix}', checksum, dim, batch_size, jax.jit(fn))

    return (
        net('features', lambda x: classify(state, x)[0], features.shape[-1]),
        net('probabilities', lambda x: jax.nn.softmax(classify(state, x)[1]), logits.shape[-1]),
    )


def extract_features(net: FeatureNet, images: np.ndarray) -> np.ndarray:
    """(N, dim) float32 features of uint8 (N, H, W, C) images, in fixed-size batches (the
    last one padded) so that one compiled program serves every N."""
    if images.dtype != np.uint8:
        raise ValueError(f'feature nets take uint8 images, got {images.dtype}')
    size = net.batch_size
    chunks = []
    for start in range(0, len(images), size):
        batch = images[start : start + size]
        padded = np.concatenate([batch, np.zeros((size - len(batch), *batch.shape[1:]), np.uint8)])
        chunks.append(np.asarray(net.apply(padded))[: len(batch)])
    return np.concatenate(chunks) if chunks else np.zeros((0, net.dim), np.float32)


def stats_dir(configured: str = '') -> Path:
    """Reference-feature cache: `configured`, else $GEN_MODELS_STATS_DIR, else
    ~/.cache/gen_models/reference_features."""
    return Path(
        os.path.expanduser(configured or os.environ.get(STATS_DIR_ENV) or DEFAULT_STATS_DIR)
    )


def reference_protocol(dataset_config: Any, split: str, num_examples: int) -> dict[str, Any]:
    """What a reference set is: dataset, split, example count and image shape."""
    return {
        'reference_dataset': dataset_config.name,
        'reference_split': split,
        'reference_examples': num_examples,
        'reference_image_shape': list(data.dataset_info(dataset_config).image_shape),
    }


def reference_features(
    net: FeatureNet,
    dataset_config: Any,
    split: str,
    num_examples: int | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> np.ndarray:
    """Features of the first `num_examples` (None: all) images of a split, cached.

    The cache file is named by dataset, split, count, image shape and the feature net's name
    and checksum; it is written atomically, so concurrent runs at worst compute it twice.
    """
    shape = 'x'.join(str(side) for side in data.dataset_info(dataset_config).image_shape)
    count = 'all' if num_examples is None else str(num_examples)
    name = '_'.join([dataset_config.name, split, count, shape, net.name, net.checksum[:16]])
    path = Path(cache_dir or stats_dir()) / (re.sub(r'[^A-Za-z0-9_.-]+', '-', name) + '.npy')
    if path.is_file():
        return np.load(path)
    images = data.load_split_array(dataset_config, split, num_examples)['image']
    features = extract_features(net, images)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f'.{path.name}.{os.getpid()}.tmp')
    with open(tmp, 'wb') as file:
        np.save(file, features)
    os.replace(tmp, path)
    return features


def generated_features(context: EvalContext, kind: str = 'features') -> np.ndarray:
    """Features of the evaluation's uint8 samples in `context.feature_net(kind)`."""
    return context.memo(
        ('generated_features', kind),
        lambda: extract_features(context.feature_net(kind), context.uint8_samples()),
    )


def reference(context: EvalContext) -> np.ndarray:
    """Features of the configured reference images (cached on disk)."""
    config = context.config

    def compute() -> np.ndarray:
        return reference_features(
            context.feature_net('features'),
            config.dataset,
            config.eval.reference_split,
            config.eval.reference_examples or None,
            stats_dir(config.eval.stats_dir),
        )

    return context.memo('reference_features', compute)


def sample_protocol(context: EvalContext, kind: str = 'features') -> dict[str, Any]:
    """What every metric of generated images in a feature space states."""
    return {
        'num_samples': len(context.uint8_samples()),
        'samples': 'generated, quantised to uint8',
        **context.feature_net(kind).protocol(),
        'seed': context.config.seed,
    }


def feature_protocol(context: EvalContext) -> dict[str, Any]:
    """`sample_protocol` plus the reference set: what FID, KID and precision/recall state."""
    config = context.config
    return {
        **sample_protocol(context),
        **reference_protocol(config.dataset, config.eval.reference_split, len(reference(context))),
    }


def knn_metric(
    name: str,
    outputs: tuple[str, str],
    description: str,
    estimate: Callable[[np.ndarray, np.ndarray, int], tuple[float, float]],
    neighbours_key: str,
) -> Metric:
    """A metric of k-NN balls in feature space: `estimate(reference, generated, k)` gives its
    two `outputs`, k = `config.eval.<neighbours_key>`; its protocol is `description` with k
    and the features' protocol."""

    def compute(context: EvalContext) -> tuple[Values, Protocols]:
        k = context.config.eval[neighbours_key]
        values = estimate(reference(context), generated_features(context), k)
        protocol = {'metric': description, 'neighbours': k, **feature_protocol(context)}
        return dict(zip(outputs, values)), {name: protocol}

    return Metric(
        name=name,
        outputs=outputs,
        description=description,
        compute=compute,
        requires=('generate',),
        feature_net='features',
        splits=reference_splits,
        keys=(
            'num_samples',
            'reference_split',
            'reference_examples',
            'feature_net',
            neighbours_key,
        ),
    )
