"""A transposed convolution whose kernel gradient XLA-CPU runs fast (a custom VJP).

`lax.conv_transpose` is a convolution of the input dilated by the stride. XLA
differentiates it with respect to the kernel as a convolution of that dilated input with
the output gradient as the window, which XLA-CPU runs 10-40x slower than the rest of the
layer (most of a DCGAN step on CPU). The same gradient is the weight gradient of the
equivalent *strided* convolution of the output gradient, which XLA-CPU runs fast.
`conv_transpose` computes the same function as `lax.conv_transpose` and takes its kernel
gradient that way; `ConvTranspose` is a drop-in for `flax.linen.ConvTranspose` with the same
parameters, initialisers and module name, so checkpoints and initial values do not change.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import flax.linen as nn
import jax
from jax import lax

Padding = tuple[tuple[int, int], ...]


def _dimension_numbers(num_spatial: int) -> tuple[str, str, str]:
    """Channels-last layouts ('NHWC', 'HWIO', 'NHWC') for `num_spatial` dimensions."""
    spatial = 'HWD'[:num_spatial]
    return f'N{spatial}C', f'{spatial}IO', f'N{spatial}C'


def transpose_padding(
    kernel_size: Sequence[int], strides: Sequence[int], padding: str | Sequence[tuple[int, int]]
) -> Padding:
    """(low, high) padding of the input-dilated convolution that `lax.conv_transpose` runs.

    'SAME' and 'VALID' follow `lax.conv_transpose` (Keras' Conv2DTranspose convention);
    explicit (low, high) pairs are used as they are, as `lax.conv_transpose` does.
    """
    if not isinstance(padding, str):
        return tuple((int(low), int(high)) for low, high in padding)
    pads = []
    for k, s in zip(kernel_size, strides):
        if padding == 'SAME':
            total = k + s - 2
            low = k - 1 if s > k - 1 else -(-total // 2)
        elif padding == 'VALID':
            total = k + s - 2 + max(k - s, 0)
            low = k - 1
        else:
            raise ValueError(f"padding {padding!r}: allowed 'SAME', 'VALID' or (low, high) pairs")
        pads.append((low, total - low))
    return tuple(pads)


def _dilated_conv(inputs: jax.Array, kernel: jax.Array, strides, padding, precision):
    return lax.conv_general_dilated(
        inputs,
        kernel,
        window_strides=(1,) * len(strides),
        padding=padding,
        lhs_dilation=strides,
        dimension_numbers=_dimension_numbers(len(strides)),
        precision=precision,
    )


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def conv_transpose(
    inputs: jax.Array,
    kernel: jax.Array,
    strides: tuple[int, ...],
    padding: Padding,
    precision: lax.Precision | None = None,
) -> jax.Array:
    """`lax.conv_transpose(inputs, kernel, strides, padding)` (NHWC, HWIO, no kernel flip)
    with `padding` from `transpose_padding`; its kernel gradient runs as a strided conv."""
    return _dilated_conv(inputs, kernel, strides, padding, precision)


def _forward(inputs, kernel, strides, padding, precision):
    return conv_transpose(inputs, kernel, strides, padding, precision), (inputs, kernel)


def _backward(strides, padding, precision, residuals, grad):
    inputs, kernel = residuals
    (grad_inputs,) = jax.linear_transpose(
        lambda x: _dilated_conv(x, kernel, strides, padding, precision), inputs
    )(grad)
    # Output o of the dilated conv sums inputs[i] * kernel[t] over s*i + low = o + t, so
    # d kernel[t] = sum_i inputs[i] * grad[s*i + low - t]: with t' = k - 1 - t, the
    # gradient of a conv of `grad` at stride s, padded (k - 1 - low) low, by its kernel
    # of taps t'. High padding makes that conv's output the inputs' size.
    kernel_size = kernel.shape[:-2]
    strided_padding = []
    for k, s, (low, _), n, m in zip(
        kernel_size, strides, padding, inputs.shape[1:-1], grad.shape[1:-1]
    ):
        before = k - 1 - low
        strided_padding.append((before, s * (n - 1) + k - m - before))
    flipped_shape = jax.ShapeDtypeStruct(
        (*kernel_size, kernel.shape[-1], kernel.shape[-2]), kernel.dtype
    )
    (flipped,) = jax.linear_transpose(
        lambda w: lax.conv_general_dilated(
            grad,
            w,
            window_strides=strides,
            padding=strided_padding,
            dimension_numbers=_dimension_numbers(len(strides)),
            precision=precision,
        ),
        flipped_shape,
    )(inputs)
    spatial = tuple(range(len(kernel_size)))
    grad_kernel = lax.rev(flipped, spatial).swapaxes(-1, -2)
    return grad_inputs, grad_kernel


conv_transpose.defvjp(_forward, _backward)


class ConvTranspose(nn.ConvTranspose):
    """`flax.linen.ConvTranspose` computed by `conv_transpose`: same fields, parameters
    ('kernel' (*kernel_size, in, out), 'bias'), initialisers and outputs.

    Supports inputs with one batch axis, padding 'SAME', 'VALID' or explicit pairs;
    kernel dilation, masks, `transpose_kernel` and 'CIRCULAR' padding raise.
    """

    @nn.compact
    def __call__(self, inputs: jax.Array) -> jax.Array:
        kernel_size = (
            (self.kernel_size,) if isinstance(self.kernel_size, int) else tuple(self.kernel_size)
        )
        rank = len(kernel_size)
        unsupported = {
            'kernel_dilation': self.kernel_dilation not in (None, 1, (1,) * rank),
            'mask': self.mask is not None,
            'transpose_kernel': self.transpose_kernel,
            "padding='CIRCULAR'": self.padding == 'CIRCULAR',
            'preferred_element_type': self.preferred_element_type is not None,
        }
        if any(unsupported.values()):
            raise NotImplementedError(
                f'{type(self).__name__}: unsupported {[k for k, v in unsupported.items() if v]}; '
                'use flax.linen.ConvTranspose'
            )
        if inputs.ndim != rank + 2:
            raise ValueError(f'inputs {inputs.shape}: expected (batch, *spatial, features)')
        strides = self.strides or 1
        strides = (strides,) * rank if isinstance(strides, int) else tuple(strides)
        kernel = self.param(
            'kernel',
            self.kernel_init,
            (*kernel_size, inputs.shape[-1], self.features),
            self.param_dtype,
        )
        bias = (
            self.param('bias', self.bias_init, (self.features,), self.param_dtype)
            if self.use_bias
            else None
        )
        inputs, kernel, bias = self.promote_dtype(inputs, kernel, bias, dtype=self.dtype)
        padding = nn.linear.canonicalize_padding(self.padding, rank)
        y = conv_transpose(
            inputs,
            kernel,
            strides,
            transpose_padding(kernel_size, strides, padding),
            self.precision,
        )
        return y if bias is None else y + bias
