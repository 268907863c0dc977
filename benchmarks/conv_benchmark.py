"""Where a conv net's train step spends its convolution time, layer by layer, in JAX and in
PyTorch eager.

  python -m benchmarks.conv_benchmark --configs dcgan_mnist,vae_mnist --batch_size 64 \
      --out runs/conv_benchmark.json

For each config, the real train step is traced (`jax.make_jaxpr`, sub-jaxprs included) and
every forward convolution in it is found with its shapes, strides, padding and input
dilation (transposed convolutions), at the batch sizes the step really uses (a GAN's D
sees real and generated images in one call), together with the gradients the step takes of
it: input gradient, kernel gradient, or both. Each of those ops is then timed alone, jitted,
computed as the model computes it (`conv_transpose.conv_transpose`, custom VJP included, for the
transposed convolutions that run inside a custom VJP; `lax.conv_general_dilated` and
`jax.vjp` otherwise), and, in PyTorch, as `aten.convolution` / `aten.convolution_backward`
(what `F.conv2d`, `F.conv_transpose2d` and autograd run) at each of `--torch_threads` and
each memory format, the per-op figure being the fastest of those variants. Calls rotate over
JAX and the torch variants, the order reversed every other repeat, so load from other
processes hits all alike; times are medians. Each op's torch result is first checked
against JAX's on the same random inputs, so both compute the same function; a layer whose
padding torch cannot express is skipped with a printed reason. FLOPs are XLA's count of the
JAX op (the same work for both frameworks). Prints a Markdown table and per-config totals;
`--out` writes JSON with the machine facts.
"""

from __future__ import annotations

import dataclasses
import os
import re
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.extend.core as jex
import jax.numpy as jnp
import numpy as np
from absl import flags
from jax import lax

from benchmarks import benchmark
from experiments import logs, runtime
from gen_models import parallel, xla_settings
from gen_models.nets import conv_transpose

TORCH_FORMATS = ('channels_last', 'contiguous')
_TORCH_FORMATS = flags.DEFINE_list(
    'torch_formats',
    list(TORCH_FORMATS),
    'Torch memory formats to time (neither is fastest for every op on CPU).',
)
FLAGS = flags.FLAGS
# Flags shared with benchmarks.benchmark (configs, batch_size, steps, repeats, warmup, torch,
# torch_threads, out), with this benchmark's defaults where they differ.
DEFAULTS = {'configs': ['dcgan_mnist', 'vae_mnist'], 'steps': 5, 'repeats': 10}

OPS = ('forward', 'input grad', 'kernel grad')
LAYOUT = ('NHWC', 'HWIO', 'NHWC')
Shape = tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class ConvLayer:
    """One forward convolution of a traced function (NHWC inputs, HWIO kernel) and the ops of
    `OPS` that the function runs for it. `custom_vjp`: it runs inside a custom VJP, which in
    these nets is `conv_transpose.conv_transpose`'s."""

    module: str
    lhs_shape: Shape
    kernel_shape: Shape
    out_shape: Shape
    strides: Shape
    padding: tuple[tuple[int, int], ...]
    lhs_dilation: Shape
    custom_vjp: bool
    ops: tuple[str, ...] = ()

    @property
    def transposed(self) -> bool:
        return any(d > 1 for d in self.lhs_dilation)

    @property
    def label(self) -> str:
        """E.g. 'DownConvStack/Conv_1 conv 14x14x64 -> 7x7x128 s2'."""
        kind, stride = (
            ('conv transpose', self.lhs_dilation) if self.transposed else ('conv', self.strides)
        )
        lhs, out = ('x'.join(map(str, shape[1:])) for shape in (self.lhs_shape, self.out_shape))
        return f'{self.module} {kind} {lhs} -> {out} s{max(stride)}'

    def apply(self, inputs: jax.Array, kernel: jax.Array) -> jax.Array:
        """The convolution, as the traced function computes it."""
        if self.custom_vjp:
            return conv_transpose.conv_transpose(inputs, kernel, self.lhs_dilation, self.padding)
        return lax.conv_general_dilated(
            inputs,
            kernel,
            self.strides,
            self.padding,
            lhs_dilation=self.lhs_dilation,
            dimension_numbers=LAYOUT,
        )


def _module_path(name_stacks: Sequence[str]) -> str:
    """'DownConvStack/Conv_1' from name stacks such as 'transpose(jvp(DownConvStack))/Conv_1'
    (flax modules name JAX's scopes; transformations wrap them)."""
    parts = []
    for part in '/'.join(name_stacks).split('/'):
        while (wrapped := re.fullmatch(r'\w+\((.*)\)', part)) is not None:
            part = wrapped.group(1)
        if part:
            parts.append(part)
    return '/'.join(parts)


def _conv_equations(jaxpr, scopes: tuple[str, ...] = (), in_custom_vjp: bool = False) -> Iterator:
    """(equation, name stacks down to it, inside a custom VJP) of every convolution in
    `jaxpr` and the jaxprs nested in its equations' parameters (jit, custom VJPs, scans)."""
    for eqn in jaxpr.eqns:
        names = (*scopes, str(eqn.source_info.name_stack))
        if eqn.primitive.name == 'conv_general_dilated':
            yield eqn, names, in_custom_vjp
        for sub in jex.jaxprs_in_params(eqn.params):
            yield from _conv_equations(
                sub, names, in_custom_vjp or eqn.primitive.name == 'custom_vjp_call'
            )


def _forward_layer(eqn, module: str, custom_vjp: bool) -> ConvLayer | str:
    """The layer an equation computes, or why it is not a plain NHWC convolution."""
    params = eqn.params
    lhs_shape, kernel_shape = (tuple(v.aval.shape) for v in eqn.invars)
    if len(lhs_shape) != 4:
        return f'{module}: {len(lhs_shape) - 2} spatial dimensions'
    expected = lax.conv_dimension_numbers(lhs_shape, kernel_shape, LAYOUT)
    unsupported = {
        'layout': params['dimension_numbers'] != expected,
        'groups': params['feature_group_count'] != 1 or params['batch_group_count'] != 1,
        'kernel dilation': any(d != 1 for d in params['rhs_dilation']),
        'strided custom VJP': custom_vjp and any(s != 1 for s in params['window_strides']),
    }
    if any(unsupported.values()):
        return f'{module}: unsupported {[k for k, v in unsupported.items() if v]}'
    return ConvLayer(
        module=module,
        lhs_shape=lhs_shape,
        kernel_shape=kernel_shape,
        out_shape=tuple(eqn.outvars[0].aval.shape),
        strides=tuple(params['window_strides']),
        padding=tuple(tuple(pair) for pair in params['padding']),
        lhs_dilation=tuple(params['lhs_dilation']),
        custom_vjp=custom_vjp and any(d > 1 for d in params['lhs_dilation']),
    )


def _gradient_op(layer: ConvLayer, operand_shapes: list[Shape], out_shape: Shape) -> str | None:
    """Which gradient of `layer` a convolution of these shapes computes, if any: the kernel
    gradient convolves the input with the output gradient into the kernel's shape (in some
    layout), the input gradient the output gradient with the kernel into the input's shape.
    (The kernel gradient is tested first: its result can have the input's shape too.)"""
    kernel = sorted(layer.kernel_shape)
    activations = sorted([layer.lhs_shape, layer.out_shape])
    if sorted(out_shape) == kernel and sorted(operand_shapes) == activations:
        return 'kernel grad'
    has_kernel = any(sorted(shape) == kernel for shape in operand_shapes)
    if out_shape == layer.lhs_shape and layer.out_shape in operand_shapes and has_kernel:
        return 'input grad'
    return None


def find_conv_layers(fn: Callable, *args: Any) -> tuple[list[ConvLayer], list[str]]:
    """The distinct forward convolutions of `fn(*args)` in order of appearance, each with the
    ops it runs (forward, and the gradients transposition made of it), and the reasons for
    convolutions left out. Gradient convolutions are told apart by their name stacks
    ('transpose(...)') and matched to a forward one by module and shapes."""
    layers: dict[ConvLayer, set[str]] = {}
    skipped, gradients = [], []
    for eqn, names, custom_vjp in _conv_equations(jax.make_jaxpr(fn)(*args).jaxpr):
        module = _module_path(names)
        if any('transpose(' in name for name in names):
            gradients.append((module, eqn))
            continue
        layer = _forward_layer(eqn, module, custom_vjp)
        if isinstance(layer, str):
            skipped.append(layer)
        else:
            layers.setdefault(layer, {'forward'})
    for module, eqn in gradients:
        operand_shapes = [tuple(v.aval.shape) for v in eqn.invars]
        for layer, ops in layers.items():
            if layer.module == module and (
                op := _gradient_op(layer, operand_shapes, tuple(eqn.outvars[0].aval.shape))
            ):
                ops.add(op)
                break
    found = [
        dataclasses.replace(layer, ops=tuple(op for op in OPS if op in ops))
        for layer, ops in layers.items()
    ]
    return found, skipped


def train_step_layers(config) -> tuple[list[ConvLayer], list[str]]:
    """`find_conv_layers` of the config's per-device train step at its batch size."""
    run = runtime.prepare(config)
    image_shape = tuple(run.info.image_shape)
    example = {'image': np.zeros((1, *image_shape), np.uint8), 'label': np.zeros((1,), np.int32)}
    state = jax.eval_shape(run.model.init, run.keys['init'], example)
    size = config.train.batch_size
    batch = {
        'image': jax.ShapeDtypeStruct((size, *image_shape), jnp.uint8),
        'label': jax.ShapeDtypeStruct((size,), jnp.int32),
    }
    step = parallel.train_step(run.model.train_step, run.mesh)
    return find_conv_layers(step, state, batch, run.keys['train'])


def random_operands(layer: ConvLayer, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Input, kernel (scaled by 1/sqrt(fan-in)) and output gradient of normal draws."""
    rng = np.random.default_rng(seed)
    fan_in = np.prod(layer.kernel_shape[:-1])
    return tuple(
        (rng.standard_normal(shape) * scale).astype(np.float32)
        for shape, scale in (
            (layer.lhs_shape, 1.0),
            (layer.kernel_shape, fan_in**-0.5),
            (layer.out_shape, 1.0),
        )
    )


def jax_op(layer: ConvLayer, op: str) -> Callable:
    """Jitted (inputs, kernel, output gradient) -> the op's result."""
    if op == 'forward':
        return jax.jit(lambda x, w, g: layer.apply(x, w))
    if op == 'input grad':
        return jax.jit(lambda x, w, g: jax.vjp(lambda x: layer.apply(x, w), x)[1](g)[0])
    return jax.jit(lambda x, w, g: jax.vjp(lambda w: layer.apply(x, w), w)[1](g)[0])


def torch_conv_args(layer: ConvLayer) -> dict[str, Any] | str:
    """The layer as arguments of torch's `aten.convolution`, or why torch cannot express it.

    A transposed convolution here is an input-dilated correlation with (low, high) padding;
    torch's is the adjoint of a strided convolution by the flipped kernel, which pads
    k - 1 - padding low and output_padding more high.
    """
    if not layer.transposed:
        if any(low != high for low, high in layer.padding):
            return f'asymmetric padding {layer.padding}'
        return {
            'stride': list(layer.strides),
            'padding': [low for low, _ in layer.padding],
            'transposed': False,
            'output_padding': [0, 0],
        }
    if any(s != 1 for s in layer.strides):
        return f'window strides {layer.strides} with input dilation'
    padding = [k - 1 - low for k, (low, _) in zip(layer.kernel_shape, layer.padding)]
    output_padding = [high - low for low, high in layer.padding]
    if min(padding) < 0 or not all(
        0 <= extra < s for extra, s in zip(output_padding, layer.lhs_dilation)
    ):
        return (
            f'transposed padding {layer.padding} (torch: padding {padding}, output padding '
            f'{output_padding})'
        )
    return {
        'stride': list(layer.lhs_dilation),
        'padding': padding,
        'transposed': True,
        'output_padding': output_padding,
    }


def to_torch_kernel(kernel: np.ndarray, transposed: bool) -> np.ndarray:
    """HWIO -> torch's (out, in, H, W) or, transposed, flipped (in, out, H, W)."""
    if transposed:
        return np.ascontiguousarray(kernel[::-1, ::-1].transpose(2, 3, 0, 1))
    return np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))


def to_torch_images(images: np.ndarray) -> np.ndarray:
    """NHWC -> NCHW."""
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2))


def torch_op(layer: ConvLayer, op: str, operands, memory_format) -> Callable[[], Any]:
    """A call of the op in torch on `operands` (inputs, kernel, output gradient in JAX's
    layouts), its tensors laid out in `memory_format`."""
    import torch

    args = torch_conv_args(layer)
    x, w, g = (
        torch.from_numpy(array).contiguous(memory_format=memory_format)
        for array in (
            to_torch_images(operands[0]),
            to_torch_kernel(operands[1], layer.transposed),
            to_torch_images(operands[2]),
        )
    )
    geometry = (args['stride'], args['padding'], [1, 1], args['transposed'])
    geometry += (args['output_padding'], 1)
    aten = torch.ops.aten
    if op == 'forward':
        return lambda: aten.convolution(x, w, None, *geometry)
    index = OPS.index(op) - 1
    mask = [index == 0, index == 1, False]
    return lambda: aten.convolution_backward(g, x, w, None, *geometry, mask)[index]


def check_torch_matches(layer: ConvLayer, op: str, operands) -> None:
    """Raises AssertionError unless torch's op equals JAX's on `operands`."""
    import torch

    expected = np.asarray(jax_op(layer, op)(*operands))
    if op == 'kernel grad':
        expected = to_torch_kernel(expected, layer.transposed)
    else:
        expected = to_torch_images(expected)
    actual = torch_op(layer, op, operands, torch.contiguous_format)().numpy()
    np.testing.assert_allclose(
        actual,
        expected,
        rtol=1e-4,
        atol=1e-4 * np.abs(expected).max(),
        err_msg=f'{layer.label} {op}: torch differs from JAX',
    )


class Settings(NamedTuple):
    """How ops are timed: blocks of `steps` calls, `repeats` blocks (medians), after `warmup`
    untimed calls; torch at each of `thread_counts` (none: JAX alone) and memory format."""

    steps: int = 5
    repeats: int = 10
    warmup: int = 5
    thread_counts: tuple[int, ...] = ()
    formats: tuple[str, ...] = TORCH_FORMATS


class Variant(NamedTuple):
    """A timed framework setting: `prepare` runs untimed before each block of `call`s."""

    prepare: Callable[[], None]
    call: Callable[[], Any]


def _time_variants(variants: dict[str, Variant], settings: Settings) -> dict[str, float]:
    """Median milliseconds per call of each variant, blocks rotating over the variants and
    the order reversed every other repeat."""
    for variant in variants.values():
        variant.prepare()
        for _ in range(settings.warmup):
            variant.call()
    names = list(variants)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for repeat in range(settings.repeats):
        for name in names if repeat % 2 == 0 else names[::-1]:
            variants[name].prepare()
            start = time.perf_counter()
            for _ in range(settings.steps):
                variants[name].call()
            seconds[name].append(time.perf_counter() - start)
    return {
        name: 1e3 * statistics.median(values) / settings.steps for name, values in seconds.items()
    }


def torch_variants(layer: ConvLayer, op: str, operands, settings: Settings) -> dict[str, Variant]:
    """The torch op at each thread count and memory format, by name."""
    import torch

    memory_formats = {'channels_last': torch.channels_last, 'contiguous': torch.contiguous_format}
    variants = {}
    for fmt in settings.formats:
        call = torch_op(layer, op, operands, memory_formats[fmt])
        for threads in settings.thread_counts:
            prepare = lambda n=threads: torch.set_num_threads(n)  # noqa: E731
            variants[f'torch {threads}t {fmt}'] = Variant(prepare, call)
    return variants


def benchmark_layer(layer: ConvLayer, settings: Settings) -> list[dict[str, Any]]:
    """One row per op the layer runs: JAX's and each torch variant's milliseconds per call,
    FLOPs, GFLOP/s, and the fastest torch variant against JAX."""
    operands = random_operands(layer)
    device_operands = [jnp.asarray(a) for a in operands]
    rows = []
    for op in layer.ops:
        fn = jax_op(layer, op)
        cost = fn.lower(*device_operands).compile().cost_analysis()
        flops = float((cost[0] if isinstance(cost, list) else cost)['flops'])
        variants = {
            'jax': Variant(lambda: None, lambda: jax.block_until_ready(fn(*device_operands)))
        }
        if settings.thread_counts:
            check_torch_matches(layer, op, operands)
            variants.update(torch_variants(layer, op, operands, settings))
        ms = _time_variants(variants, settings)
        row = {
            'layer': layer.label,
            'batch': layer.lhs_shape[0],
            'op': op,
            **{
                field.name: getattr(layer, field.name)
                for field in dataclasses.fields(layer)
                if field.name != 'ops'
            },
            'flops': flops,
            'jax_ms': ms.pop('jax'),
            'torch_ms': ms,
        }
        row['jax_gflops'] = flops / row['jax_ms'] / 1e6
        if ms:
            fastest = min(ms, key=ms.get)
            row.update(
                torch_fastest=fastest,
                torch_fastest_ms=ms[fastest],
                torch_over_jax=ms[fastest] / row['jax_ms'],
                torch_gflops=flops / ms[fastest] / 1e6,
            )
        rows.append(row)
    return rows


def benchmark_config(name: str, config, settings: Settings) -> dict[str, Any]:
    """Rows of every conv op of the config's train step, the layers skipped (why), and
    totals: JAX's and each torch variant's sum over the rows."""
    layers, skipped = train_step_layers(config)
    rows = []
    for layer in layers:
        if settings.thread_counts and isinstance(reason := torch_conv_args(layer), str):
            skipped.append(f'{layer.label}: torch cannot express {reason}')
            continue
        rows += [{'config': name, **row} for row in benchmark_layer(layer, settings)]
    for reason in skipped:
        print(f'conv_benchmark: {name}: skipped {reason}', file=sys.stderr)
    totals = {'jax_ms': sum(row['jax_ms'] for row in rows)}
    if settings.thread_counts and rows:
        torch_totals = {v: sum(row['torch_ms'][v] for row in rows) for v in rows[0]['torch_ms']}
        fastest = min(torch_totals, key=torch_totals.get)
        totals.update(torch_ms=torch_totals, torch_fastest=fastest)
    return {'rows': rows, 'skipped': skipped, 'totals': totals}


def markdown_table(results: dict[str, dict[str, Any]]) -> str:
    """One line per (config, layer, op) and per config a line of totals; torch figures are
    the fastest variant's (per op; per config for the totals)."""
    lines = [
        '| config | layer | batch | op | JAX ms | torch ms | torch variant | torch/JAX | '
        'JAX GFLOP/s | torch GFLOP/s |',
        '|---|---|---|---|---|---|---|---|---|---|',
    ]
    for name, result in results.items():
        for r in result['rows']:
            torch_cells = (
                f'{r["torch_fastest_ms"]:.2f} | {r["torch_fastest"]} | '
                f'{r["torch_over_jax"]:.2f} | {r["jax_gflops"]:.1f} | {r["torch_gflops"]:.1f}'
                if 'torch_fastest' in r
                else f'- | - | - | {r["jax_gflops"]:.1f} | -'
            )
            lines.append(
                f'| {name} | {r["layer"]} | {r["batch"]} | {r["op"]} | {r["jax_ms"]:.2f} | '
                f'{torch_cells} |'
            )
        totals = result['totals']
        torch_cells = '- | - | -'
        if 'torch_fastest' in totals:
            torch_ms = totals['torch_ms'][totals['torch_fastest']]
            torch_cells = (
                f'{torch_ms:.2f} | {totals["torch_fastest"]} | {torch_ms / totals["jax_ms"]:.2f}'
            )
        lines.append(f'| {name} | **total** | | all | {totals["jax_ms"]:.2f} | {torch_cells} | | |')
    return '\n'.join(lines)


def run_benchmark(
    configs: dict[str, Any], settings: Settings, torch_threads: Sequence[str] = ()
) -> dict[str, Any]:
    """Results of every config (by label) plus the machine facts they are relative to.
    `torch_threads`: thread counts as --torch_threads takes them; empty (or torch missing):
    JAX alone."""
    thread_counts, torch_note = (
        benchmark.torch_thread_counts(list(torch_threads)) if torch_threads else ([], '')
    )
    if torch_threads and not thread_counts:
        print(f'conv_benchmark: skipping PyTorch: {torch_note}', file=sys.stderr)
    settings = settings._replace(thread_counts=tuple(thread_counts))
    load_before = os.getloadavg()[0]
    matmul_rate = benchmark.matmul_gflops()
    results = {name: benchmark_config(name, config, settings) for name, config in configs.items()}
    return {
        'configs': results,
        'matmul_gflops': matmul_rate,
        'load_average_before_after': [load_before, os.getloadavg()[0]],
        'machine': benchmark.machine_facts(torch_note),
        'command': ' '.join(sys.argv),
        'settings': settings._asdict(),
    }


def main(argv):
    del argv
    xla_settings.enable_compilation_cache()  # as launch.py runs
    xla_settings.use_unrolled_threefry()  # the CPU lowering launch.py trains with
    result = run_benchmark(
        {name: benchmark.load_config(name, FLAGS.batch_size) for name in FLAGS.configs},
        Settings(FLAGS.steps, FLAGS.repeats, FLAGS.warmup, formats=tuple(_TORCH_FORMATS.value)),
        FLAGS.torch_threads if FLAGS.torch else (),
    )
    print(markdown_table(result['configs']))
    print(f'float32 matmul: {result["matmul_gflops"]:.0f} GFLOP/s')
    if FLAGS.out:
        logs.write_json(Path(FLAGS.out), result)


if __name__ == '__main__':
    benchmark.run_main(main, DEFAULTS)
