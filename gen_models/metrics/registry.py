"""What a metric declares, the context it computes in, and the general `config.eval` keys.

A `Metric` names the values it reports, what it needs of the model (capabilities of the
`ModelDef`) and of the run (a feature network, dataset splits, `eval.*` keys), and computes
`(values, protocols)` in an `EvalContext`. The run machinery builds the context: it knows
how to run an eval step over the eval split and how to load a feature network (a classifier
is restored from its workdir); everything else a metric needs is here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Hashable, Iterator
from typing import Any

import jax
import ml_collections
import numpy as np

from gen_models import config as cfg
from gen_models import images

Values = dict[str, float]
Protocols = dict[str, dict[str, Any]]

# ModelDef capabilities a metric may require, with what the error says is needed.
REQUIREMENTS = {
    'generate': 'a generative model',
    'log_weights': 'a model with importance log-weights (an encoder)',
    'num_classes': 'a class-conditional model (model.conditional=True)',
    'represent': 'a representation (an encoder mean, e.g. model.name=disentangled_vae)',
}


def no_splits(config: ml_collections.ConfigDict) -> dict[str, str]:
    del config
    return {}


@dataclasses.dataclass(frozen=True)
class Metric:
    """One entry of `config.eval.metrics`.

    name: what `eval.metrics` names it.
    outputs: the values it reports (results.json's eval/<value>); per-class extras such as
      '<name>_class_<c>' come on top.
    description: one line for docs and errors.
    compute: (EvalContext) -> (values, {name: protocol}).
    requires: ModelDef capabilities (keys of REQUIREMENTS).
    feature_net: 'features' (`eval.feature_net`'s net) | 'probabilities' (the classifier's)
      | None.
    splits: (config) -> {config key: split} of the dataset splits it reads besides the eval
      split, checked against the dataset before any work.
    keys: the `eval.*` keys it reads.
    datasets: the values of `dataset.name` it can score (ground-truth factors); () = any.
    """

    name: str
    outputs: tuple[str, ...]
    description: str
    compute: Callable[[EvalContext], tuple[Values, Protocols]]
    requires: tuple[str, ...] = ()
    feature_net: str | None = None
    splits: Callable[[ml_collections.ConfigDict], dict[str, str]] = no_splits
    keys: tuple[str, ...] = ()
    datasets: tuple[str, ...] = ()


def eval_defaults() -> ml_collections.ConfigDict:
    """The `config.eval` keys of every metric's evaluation (metric modules add their own)."""
    evaluation = ml_collections.ConfigDict()
    evaluation.metrics = ()  # names of gen_models.metrics (docs/evaluation.md), beyond the
    # eval step's values
    evaluation.every = 0  # steps between eval.metrics while training; 0 = only --mode eval
    evaluation.keep_best = ''  # a value of eval.metrics (e.g. 'parzen_validation', 'fid'):
    # keep the checkpoint where it was best in training, in <workdir>/best_checkpoint; '' = off
    evaluation.keep_best_mode = 'max'  # 'max' | 'min': which end of eval.keep_best is best
    evaluation.checkpoint = 'latest'  # --mode eval: 'latest' | 'best' (eval.keep_best's)
    evaluation.num_samples = 10000  # metrics of generated images: how many are measured
    return evaluation


EVAL_RULES: dict[str, cfg.Rule] = {
    'eval.every': cfg.at_least(0),
    'eval.keep_best_mode': cfg.choice('max', 'min'),
    'eval.checkpoint': cfg.choice('latest', 'best'),
    'eval.num_samples': cfg.at_least(2),
}


@dataclasses.dataclass
class EvalContext:
    """One evaluation of one state: what metrics compute from, with memoised shared work.

    evaluate: (per-device eval step) -> exact means over the configured eval split.
    load_feature_net: ('features' | 'probabilities') -> FeatureNet.
    protocol: the run's eval protocol (dataset, split, examples, seed, units).
    run_cache: values that depend on the config alone, kept for the whole run.
    """

    config: ml_collections.ConfigDict
    info: Any
    model: Any
    state: Any
    sample_rng: jax.Array
    evaluate: Callable[[Callable], dict[str, float]]
    load_feature_net: Callable[[str], Any]
    protocol: dict[str, Any]
    run_cache: dict[Hashable, Any]
    _memo: dict[Hashable, Any] = dataclasses.field(default_factory=dict)

    def memo(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """`compute()` once per evaluation (e.g. features several metrics share)."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def once_per_run(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """`compute()` once per run, for values that do not depend on the model."""
        if key not in self.run_cache:
            self.run_cache[key] = compute()
        return self.run_cache[key]

    def requested_labels(self, num: int) -> np.ndarray | None:
        """Labels asked of a class-conditional model: 0, 1, .., C-1, 0, 1, .. (balanced);
        None for unconditional models."""
        return balanced_labels(self.model.num_classes, num)

    def samples(self) -> np.ndarray:
        """`eval.num_samples` generated images in the model's image range, `eval_batch_size`
        per call, of the `requested_labels` for conditional models. Chunk c is drawn with
        key fold_in(sample key, c + 1) (sample grids use the key itself)."""
        return self.memo('samples', self._generate)

    def uint8_samples(self) -> np.ndarray:
        """The samples quantised to uint8, as saved images would be."""
        return self.memo(
            'uint8_samples', lambda: images.to_uint8(self.samples(), self.model.image_range)
        )

    def feature_net(self, kind: str) -> Any:
        return self.memo(('feature_net', kind), lambda: self.load_feature_net(kind))

    def _generate(self) -> np.ndarray:
        config = self.config
        num, size = config.eval.num_samples, config.train.eval_batch_size
        labels = self.requested_labels(-(-num // size) * size)
        return np.concatenate(
            list(generate_chunks(self.model, self.state, self.sample_rng, num, size, labels))
        )


def balanced_labels(num_classes: int, num: int) -> np.ndarray | None:
    """0, 1, .., C-1, 0, 1, .. for `num` images of a class-conditional model; None for
    unconditional ones (num_classes 0)."""
    return (np.arange(num) % num_classes).astype(np.int32) if num_classes else None


def generate_chunks(
    model: Any, state: Any, rng: jax.Array, num: int, size: int, labels: np.ndarray | None
) -> Iterator[np.ndarray]:
    """`num` generated images in chunks of `size` (the last one cut), in the model's image
    range; chunk c is drawn with key fold_in(rng, c + 1) (sample grids use the key itself)
    and `labels[c * size:(c + 1) * size]` for conditional models. What evaluation scores and
    `--mode export` writes are the same images."""
    generate = jax.jit(model.generate, static_argnums=2)
    for index in range(-(-num // size)):
        chunk_labels = None if labels is None else labels[index * size : (index + 1) * size]
        images = generate(state, jax.random.fold_in(rng, index + 1), size, chunk_labels)
        yield np.asarray(images)[: num - index * size]
