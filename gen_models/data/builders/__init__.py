"""The project's TFDS builders (array_record files, numpy features: no TensorFlow needed).

Their TFDS names carry a `gen_models_` prefix because TFDS itself owns 'mnist', 'cifar10',
...; configs refer to them by the short names of `BUILDERS`.
"""

import types

import tensorflow_datasets as tfds

from gen_models.data.builders import base
from gen_models.data.builders.cifar10 import GenModelsCifar10
from gen_models.data.builders.fashion_mnist import GenModelsFashionMnist
from gen_models.data.builders.frey_faces import GenModelsFreyFaces
from gen_models.data.builders.mnist import GenModelsMnist
from gen_models.data.builders.olivetti_faces import GenModelsOlivettiFaces
from gen_models.data.builders.shapes import GenModelsShapes, config_for

BUILDERS = types.MappingProxyType(
    {
        'shapes': GenModelsShapes,
        'mnist': GenModelsMnist,
        'fashion_mnist': GenModelsFashionMnist,
        'cifar10': GenModelsCifar10,
        'frey_faces': GenModelsFreyFaces,
        'olivetti_faces': GenModelsOlivettiFaces,
    }
)


def make_builder(
    name: str,
    *,
    data_dir: str,
    source_dir: str | None,
    shapes_resolution: int,
    verify_checksums: bool = True,
) -> tfds.core.DatasetBuilder:
    """Constructs the project builder for a short name, writing array_record files."""
    cls = BUILDERS[name]
    kwargs = dict(data_dir=data_dir, file_format='array_record')
    if issubclass(cls, base.SourceFileBuilder):
        kwargs.update(source_dir=source_dir, verify_checksums=verify_checksums)
    if cls is GenModelsShapes:
        kwargs['config'] = config_for(shapes_resolution)
    return cls(**kwargs)
