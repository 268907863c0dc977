"""Ground-truth factors of variation of the embedded 'shapes' dataset, for disentanglement
metrics: the whole factor grid (3 shapes x 6 scales x 40 rotations x 32 x 32 positions, as
dSprites), sampled uniformly and rendered exactly as the stored images were.

`ShapesFactors` has the interface of disentanglement_lib's `GroundTruthData`
(`num_factors`, `factors_num_values`, `sample_factors`, `sample_observations_from_factors`,
`sample`, `sample_observations`), so the same object serves this project's metrics and the
reference implementation. Factors are integer indices into the grid's values; observations
are uint8 images (N, side, side, 1).
"""

from __future__ import annotations

import numpy as np

from gen_models.data import shapes
from gen_models.data.builders import shapes as builder

FACTOR_NAMES = ('shape', 'scale', 'rotation', 'pos_x', 'pos_y')


class ShapesFactors:
    """The 'shapes' factor grid at one rendering resolution."""

    def __init__(self, resolution: int):
        self.resolution = resolution
        self.factors_num_values = [
            len(shapes.SHAPE_NAMES),
            len(builder.SCALES),
            len(builder.ROTATIONS),
            len(builder.POSITIONS),
            len(builder.POSITIONS),
        ]

    @property
    def num_factors(self) -> int:
        return len(self.factors_num_values)

    def sample_factors(self, num: int, random_state: np.random.RandomState) -> np.ndarray:
        """(num, 5) factor indices, each factor uniform and independent."""
        return np.stack(
            [random_state.randint(size, size=num) for size in self.factors_num_values], axis=1
        )

    def sample_observations_from_factors(
        self, factors: np.ndarray, random_state: np.random.RandomState | None = None
    ) -> np.ndarray:
        """The images of (N, 5) factor indices; rendering is deterministic (the state is
        unused, kept for the interface)."""
        del random_state
        factors = np.asarray(factors)
        as_stored = lambda values, column: values[factors[:, column]].astype(np.float32)
        return shapes.render_batch(
            factors[:, 0],
            as_stored(builder.SCALES, 1),
            as_stored(builder.ROTATIONS, 2),
            as_stored(builder.POSITIONS, 3),
            as_stored(builder.POSITIONS, 4),
            self.resolution,
        )

    def sample(
        self, num: int, random_state: np.random.RandomState
    ) -> tuple[np.ndarray, np.ndarray]:
        """(factors, images) of `num` uniform draws."""
        factors = self.sample_factors(num, random_state)
        return factors, self.sample_observations_from_factors(factors, random_state)

    def sample_observations(self, num: int, random_state: np.random.RandomState) -> np.ndarray:
        return self.sample(num, random_state)[1]
