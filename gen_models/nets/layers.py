"""Optional spectral normalisation of a layer, for discriminators."""

from __future__ import annotations

import flax.linen as nn
import jax


def spectral(layer: nn.Module, x: jax.Array, enabled: bool, update_stats: bool) -> jax.Array:
    """`layer(x)`, with its weights divided by their largest singular value when `enabled`
    (Miyato et al. 2018, `nn.SpectralNorm`: one power iteration per call, its vector kept in
    the 'batch_stats' collection and advanced when `update_stats`). The normalised weights
    take `x`'s dtype: under bfloat16 compute the layer stays bfloat16 while the power iteration
    runs in the statistics' float32."""
    if enabled:
        return nn.SpectralNorm(layer, dtype=x.dtype)(x, update_stats=update_stats)
    return layer(x)
