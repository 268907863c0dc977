"""Mixed precision: a network computing in bfloat16 while its variables stay float32.

`train.compute_dtype = 'bfloat16'` wraps every net of a family in `MixedPrecision`. Its
`apply` casts the parameters and the floating inputs to bfloat16 (the casts are
differentiable, so gradients reach the float32 parameters as float32 and the optimiser
state stays float32) and casts the floating outputs and the updated collections (batch-norm
statistics, spectral-norm vectors) back to float32, so losses, logits and stored statistics
are float32. flax's batch norm computes its statistics in float32 whatever its input.
No loss scaling is needed: bfloat16 has float32's exponent range (float16 would need it,
and is not offered).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

COMPUTE_DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}


def cast_floating(tree: Any, dtype: Any) -> Any:
    """`tree` with its floating arrays cast to `dtype`; other leaves (integer labels, PRNG
    keys, Python flags) as they are."""

    def cast(leaf):
        if isinstance(leaf, (jax.Array, np.ndarray)) and jnp.issubdtype(leaf.dtype, jnp.floating):
            return leaf.astype(dtype)
        return leaf

    return jax.tree.map(cast, tree)


@dataclasses.dataclass(frozen=True)
class MixedPrecision:
    """`module`'s `init` (float32, unchanged) and an `apply` that computes in `dtype`."""

    module: nn.Module
    dtype: Any

    def init(self, *args: Any, **kwargs: Any) -> Any:
        return self.module.init(*args, **kwargs)

    def apply(self, variables: Any, *args: Any, mutable: Any = False, **kwargs: Any) -> Any:
        computed = {
            name: cast_floating(value, self.dtype) if name == 'params' else value
            for name, value in variables.items()
        }
        args, kwargs = cast_floating((args, kwargs), self.dtype)
        out = self.module.apply(computed, *args, mutable=mutable, **kwargs)
        # With `mutable`, flax returns (outputs, updated collections): both back to float32.
        return cast_floating(out, jnp.float32)


# What a family holds for each net: the module, or the module computing in bfloat16.
Net = nn.Module | MixedPrecision


def with_compute_dtype(module: nn.Module, compute_dtype: str) -> Net:
    """`module` itself for 'float32' (the same program as without this), else wrapped to
    compute in `compute_dtype` (a key of `COMPUTE_DTYPES`)."""
    dtype = COMPUTE_DTYPES[compute_dtype]
    if dtype == jnp.float32:
        return module
    return MixedPrecision(module, dtype)
