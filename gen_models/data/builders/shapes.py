"""The 'shapes' dataset: procedural dSprites-like images, generated locally (no download).

Factors come from a grid of 3 shapes x 6 scales x 40 rotations x 32 x-positions x
32 y-positions (737,280 combinations): scales 0.5..1, rotations k * 2pi/40, positions
0.2..0.8 (so every shape stays inside the frame). A fixed seed draws 22,000 distinct
combinations: the first 20,000 are 'train', the other 2,000 'test' (disjoint splits, each
stored in drawing order). Images are rendered by `gen_models.data.shapes.render_batch` from
the factors as stored (float32), so re-rendering a stored example reproduces it bit for bit.
"""

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from gen_models.data import shapes
from gen_models.data.builders import base

SCALES = np.linspace(0.5, 1.0, 6)
ROTATIONS = np.arange(40) * (2 * np.pi / 40)
POSITIONS = np.linspace(0.2, 0.8, 32)
NUM_TRAIN = 20_000
NUM_TEST = 2_000
SEED = 0


@dataclasses.dataclass
class ShapesConfig(tfds.core.BuilderConfig):
    """Rendering resolution (pixels per side); the factors do not depend on it."""

    resolution: int = 64


def config_for(resolution: int) -> ShapesConfig | str:
    """The predefined config name for a resolution, else a custom config."""
    name = f'res{resolution}'
    if name in GenModelsShapes.builder_configs:
        return name
    return ShapesConfig(name=name, resolution=resolution)


def sample_factors(num: int, seed: int = SEED) -> dict[str, np.ndarray]:
    """Draws `num` distinct grid combinations, as float32 factors (shape as int64).

    Uses the raw PCG64 stream, which NumPy keeps stable across versions.
    """
    sizes = (len(shapes.SHAPE_NAMES), len(SCALES), len(ROTATIONS), len(POSITIONS), len(POSITIONS))
    keys = np.random.PCG64(seed).random_raw(int(np.prod(sizes)))
    chosen = np.argsort(keys, kind='stable')[:num]
    s, sc, r, x, y = np.unravel_index(chosen, sizes)
    f32 = lambda a: a.astype(np.float32)
    return {
        'shape': s.astype(np.int64),
        'scale': f32(SCALES[sc]),
        'rotation': f32(ROTATIONS[r]),
        'pos_x': f32(POSITIONS[x]),
        'pos_y': f32(POSITIONS[y]),
    }


class GenModelsShapes(base.Builder):
    """White square / ellipse / heart on black, with ground-truth factors (1 channel)."""

    VERSION = tfds.core.Version('1.0.0')
    BUILDER_CONFIGS = [ShapesConfig(name=f'res{r}', resolution=r) for r in (28, 32, 64)]
    DEFAULT_BUILDER_CONFIG_NAME = 'res64'

    def _info(self) -> tfds.core.DatasetInfo:
        r = self.builder_config.resolution
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__,
            features=tfds.features.FeaturesDict(
                {
                    'image': tfds.features.Tensor(shape=(r, r, 1), dtype=np.uint8),
                    'label': tfds.features.ClassLabel(names=shapes.SHAPE_NAMES),
                    'shape': tfds.features.ClassLabel(names=shapes.SHAPE_NAMES),
                    'scale': tfds.features.Scalar(dtype=np.float32),
                    'rotation': tfds.features.Scalar(dtype=np.float32),
                    'pos_x': tfds.features.Scalar(dtype=np.float32),
                    'pos_y': tfds.features.Scalar(dtype=np.float32),
                }
            ),
            supervised_keys=('image', 'label'),
            disable_shuffling=True,  # keep the source order
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # nothing to download
        factors = sample_factors(NUM_TRAIN + NUM_TEST)
        return {
            'train': self._generate_examples(factors, 0, NUM_TRAIN),
            'test': self._generate_examples(factors, NUM_TRAIN, NUM_TRAIN + NUM_TEST),
        }

    def _generate_examples(self, factors, start, stop):
        part = {k: v[start:stop] for k, v in factors.items()}
        images = shapes.render_batch(**part, resolution=self.builder_config.resolution)
        for i, image in enumerate(images):
            example = {k: v[i] for k, v in part.items()}
            yield start + i, {'image': image, 'label': example['shape'], **example}
