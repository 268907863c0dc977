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
import numpy as np
from flax import traverse_util

from gen_models import data
from gen_models.nets import inception
from gen_models.nets.classifier import Classifier

STATS_DIR_ENV = 'GEN_MODELS_STATS_DIR'
DEFAULT_STATS_DIR = '~/.cache/gen_models/reference_features'


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
    """The standard FID Inception (pool3) from `inception.inception_path(path)`."""
    weights = inception.inception_path(path)
    if not weights.is_file():
        raise FileNotFoundError(
            f'FID Inception weights not found at {weights}: set config.eval.inception_path or '
            f'${inception.INCEPTION_ENV} (the README says how to obtain the file)'
        )
    params = inception.load_params(weights)
    model = inception.FIDInception()
    return FeatureNet(
        name='inception-2015-12-05/pool3',
        checksum=inception.file_checksum(weights),
        dim=inception.FEATURE_DIM,
        batch_size=batch_size,
        apply=jax.jit(lambda images: model.apply({'params': params}, inception.preprocess(images))),
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
    module: Classifier, params: Any, name: str, batch_size: int
) -> tuple[FeatureNet, FeatureNet]:
    """A trained `Classifier` as two nets sharing one checksum: its penultimate features
    and its class probabilities."""
    checksum = params_checksum(params)
    variables = {'params': params}

    def net(suffix: str, fn: Callable, dim: int) -> FeatureNet:
        return FeatureNet(f'{name}/{suffix}', checksum, dim, batch_size, jax.jit(fn))

    return (
        net('features', lambda x: module.apply(variables, x)[0], module.feature_dim),
        net(
            'probabilities',
            lambda x: jax.nn.softmax(module.apply(variables, x)[1]),
            module.num_classes,
        ),
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
