"""The FID Inception in plain PyTorch: the alternative `benchmarks.inception_benchmark` measures
`gen_models.nets.inception` against, and a second implementation of the same features.

The same network as the Flax port (InceptionV3 "inception-2015-12-05", pool3, in its FID
variant: average pools that do not count padding, a max pool in the last block's pool branch),
written with `torch.nn.functional` convolutions and pools, and the same input pipeline: the
legacy TF bilinear resize to 299 as two matmuls, `(x - 128) / 128`, grey repeated to three
channels. Weights come from the same `.npz`, each conv's batch norm folded into its kernel and
bias when loaded (`conv(x) * s + (beta - mean * s)`, `s = 1 / sqrt(var + 1e-3)`). Tensors are
channels-last, oneDNN's fastest layout for these convolutions on CPU. Needs
`pip install -e '.[bench]'`.
"""

from __future__ import annotations

import os

import numpy as np
import torch
import torch.nn.functional as F

from gen_models.nets import inception

Weights = dict[str, tuple[torch.Tensor, torch.Tensor]]


def load_weights(path: str | os.PathLike[str]) -> Weights:
    """(kernel (out, in, kh, kw), bias) of every conv by name ('mixed.tower.conv_1'), its
    batch norm folded in (in float64, then rounded to float32), as the port folds them."""
    weights = {}
    for name, leaves in inception.read_convs(path).items():
        kernel, bias = inception.fold_batch_norm(leaves)
        weights[name] = (
            torch.from_numpy(kernel.astype(np.float32)).contiguous(
                memory_format=torch.channels_last
            ),
            torch.from_numpy(bias.astype(np.float32)),
        )
    return weights


class Net:
    """The network on `weights`, block by block, each conv `name`d as in the weights file."""

    def __init__(self, weights: Weights):
        self.weights = weights

    def conv(
        self, x: torch.Tensor, name: str, stride: int = 1, padding: tuple[int, int] | None = None
    ) -> torch.Tensor:
        """Conv + folded batch norm + ReLU; `padding` None pads by half the kernel."""
        kernel, bias = self.weights[name]
        padding = padding or (kernel.shape[2] // 2, kernel.shape[3] // 2)
        return F.relu_(F.conv2d(x, kernel, bias, stride, padding))

    def block_a(self, x: torch.Tensor, name: str) -> torch.Tensor:
        b1 = self.conv(x, f'{name}.conv')
        b5 = self.conv(self.conv(x, f'{name}.tower.conv'), f'{name}.tower.conv_1')
        b3 = self.conv(x, f'{name}.tower_1.conv')
        b3 = self.conv(self.conv(b3, f'{name}.tower_1.conv_1'), f'{name}.tower_1.conv_2')
        pooled = F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)
        return torch.cat([b1, b5, b3, self.conv(pooled, f'{name}.tower_2.conv')], 1)

    def block_b(self, x: torch.Tensor, name: str) -> torch.Tensor:
        b3 = self.conv(x, f'{name}.conv', 2, (0, 0))
        bd = self.conv(self.conv(x, f'{name}.tower.conv'), f'{name}.tower.conv_1')
        bd = self.conv(bd, f'{name}.tower.conv_2', 2, (0, 0))
        return torch.cat([b3, bd, F.max_pool2d(x, 3, 2)], 1)

    def block_c(self, x: torch.Tensor, name: str) -> torch.Tensor:
        b1 = self.conv(x, f'{name}.conv')
        b7 = self.conv(x, f'{name}.tower.conv')
        for conv in ('conv_1', 'conv_2'):
            b7 = self.conv(b7, f'{name}.tower.{conv}')
        bd = self.conv(x, f'{name}.tower_1.conv')
        for conv in ('conv_1', 'conv_2', 'conv_3', 'conv_4'):
            bd = self.conv(bd, f'{name}.tower_1.{conv}')
        pooled = F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)
        return torch.cat([b1, b7, bd, self.conv(pooled, f'{name}.tower_2.conv')], 1)

    def block_d(self, x: torch.Tensor, name: str) -> torch.Tensor:
        b3 = self.conv(self.conv(x, f'{name}.tower.conv'), f'{name}.tower.conv_1', 2, (0, 0))
        b7 = self.conv(x, f'{name}.tower_1.conv')
        for conv in ('conv_1', 'conv_2'):
            b7 = self.conv(b7, f'{name}.tower_1.{conv}')
        b7 = self.conv(b7, f'{name}.tower_1.conv_3', 2, (0, 0))
        return torch.cat([b3, b7, F.max_pool2d(x, 3, 2)], 1)

    def block_e(self, x: torch.Tensor, name: str, max_pool: bool) -> torch.Tensor:
        b1 = self.conv(x, f'{name}.conv')
        b3 = self.conv(x, f'{name}.tower_conv')
        b3 = [
            self.conv(b3, f'{name}.tower_mixed_conv'),
            self.conv(b3, f'{name}.tower_mixed_conv_1'),
        ]
        bd = self.conv(self.conv(x, f'{name}.tower_1_conv'), f'{name}.tower_1_conv_1')
        bd = [
            self.conv(bd, f'{name}.tower_1_mixed_conv'),
            self.conv(bd, f'{name}.tower_1_mixed_conv_1'),
        ]
        if max_pool:
            pooled = F.max_pool2d(x, 3, 1, 1)
        else:
            pooled = F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)
        return torch.cat([b1, *b3, *bd, self.conv(pooled, f'{name}.tower_2_conv')], 1)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, 299, 299) inputs in [-1, 1] -> (N, 2048) pool3 features."""
        x = self.conv(x, 'conv', 2, (0, 0))
        x = self.conv(x, 'conv_1', 1, (0, 0))
        x = F.max_pool2d(self.conv(x, 'conv_2'), 3, 2)
        x = self.conv(self.conv(x, 'conv_3'), 'conv_4', 1, (0, 0))
        x = F.max_pool2d(x, 3, 2)
        for name in ('mixed', 'mixed_1', 'mixed_2'):
            x = self.block_a(x, name)
        x = self.block_b(x, 'mixed_3')
        for index in range(4, 8):
            x = self.block_c(x, f'mixed_{index}')
        x = self.block_d(x, 'mixed_8')
        x = self.block_e(x, 'mixed_9', max_pool=False)
        x = self.block_e(x, 'mixed_10', max_pool=True)
        return x.mean((2, 3))


def preprocess(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, H, W, C in {1, 3}) images -> (N, 3, 299, 299) channels-last inputs: the
    legacy TF bilinear resize (rows, then columns, as matmuls), `(x - 128) / 128`, grey
    repeated to three channels."""
    x = images.permute(0, 3, 1, 2).float()
    height, width = x.shape[2:]
    size = inception.INPUT_SIZE
    if (height, width) != (size, size):
        rows = torch.from_numpy(inception.legacy_bilinear_matrix(height, size))
        cols = torch.from_numpy(inception.legacy_bilinear_matrix(width, size))
        x = rows @ x @ cols.T
    x = (x - 128.0) / 128.0
    x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
    return x.contiguous(memory_format=torch.channels_last)


class TorchInception:
    """uint8 NHWC images -> (N, 2048) pool3 features, in inference mode."""

    def __init__(self, path: str | os.PathLike[str] = ''):
        self.net = Net(load_weights(inception.inception_path(str(path))))

    @torch.inference_mode()
    def __call__(self, images: np.ndarray | torch.Tensor) -> torch.Tensor:
        return self.net(preprocess(torch.as_tensor(images)))
