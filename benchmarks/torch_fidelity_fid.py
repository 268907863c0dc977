"""FID of two image sets by torch-fidelity, with the project's Inception weights: a second,
independent path to the FID of `python -m gen_models.score` (torch-fidelity's own network
code, TF1-compatible resize and Fréchet distance; only the weights are shared).

  pip install -e '.[bench]'
  python -m benchmarks.torch_fidelity_fid runs/dcgan_cifar10/export/0012000/images \
      cifar10:train --out runs/torch_fidelity_fid.json

Each set is given as to `gen_models.score`: a folder of images (as `--mode export
--config.export.format=png` writes), an `.npz`, or `dataset:split[:start:stop]`; sets other
than folders are written as RGB PNG folders beside `--out` for torch-fidelity to read.
The weights file of `gen_models.nets.inception` is renamed into torch-fidelity's
`FeatureExtractorInceptionV3` layout (its 1008-way classifier, which the 2048 pool features
never reach, is left at zeros) and saved beside `--out`; torch-fidelity never downloads.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from experiments import logs
from gen_models import score
from gen_models.nets import inception

_STEM = {
    'conv': 'Conv2d_1a_3x3',
    'conv_1': 'Conv2d_2a_3x3',
    'conv_2': 'Conv2d_2b_3x3',
    'conv_3': 'Conv2d_3b_1x1',
    'conv_4': 'Conv2d_4a_3x3',
}
_BLOCK_A = {
    'conv': 'branch1x1',
    'tower.conv': 'branch5x5_1',
    'tower.conv_1': 'branch5x5_2',
    'tower_1.conv': 'branch3x3dbl_1',
    'tower_1.conv_1': 'branch3x3dbl_2',
    'tower_1.conv_2': 'branch3x3dbl_3',
    'tower_2.conv': 'branch_pool',
}
_BLOCK_B = {
    'conv': 'branch3x3',
    'tower.conv': 'branch3x3dbl_1',
    'tower.conv_1': 'branch3x3dbl_2',
    'tower.conv_2': 'branch3x3dbl_3',
}
_BLOCK_C = {
    'conv': 'branch1x1',
    **{f'tower.{c}': f'branch7x7_{i + 1}' for i, c in enumerate(('conv', 'conv_1', 'conv_2'))},
    **{
        f'tower_1.{c}': f'branch7x7dbl_{i + 1}'
        for i, c in enumerate(('conv', 'conv_1', 'conv_2', 'conv_3', 'conv_4'))
    },
    'tower_2.conv': 'branch_pool',
}
_BLOCK_D = {
    'tower.conv': 'branch3x3_1',
    'tower.conv_1': 'branch3x3_2',
    **{
        f'tower_1.{c}': f'branch7x7x3_{i + 1}'
        for i, c in enumerate(('conv', 'conv_1', 'conv_2', 'conv_3'))
    },
}
_BLOCK_E = {
    'conv': 'branch1x1',
    'tower_conv': 'branch3x3_1',
    'tower_mixed_conv': 'branch3x3_2a',
    'tower_mixed_conv_1': 'branch3x3_2b',
    'tower_1_conv': 'branch3x3dbl_1',
    'tower_1_conv_1': 'branch3x3dbl_2',
    'tower_1_mixed_conv': 'branch3x3dbl_3a',
    'tower_1_mixed_conv_1': 'branch3x3dbl_3b',
    'tower_2_conv': 'branch_pool',
}
_BLOCKS = {
    'mixed': ('Mixed_5b', _BLOCK_A),
    'mixed_1': ('Mixed_5c', _BLOCK_A),
    'mixed_2': ('Mixed_5d', _BLOCK_A),
    'mixed_3': ('Mixed_6a', _BLOCK_B),
    **{f'mixed_{i}': (f'Mixed_6{"bcde"[i - 4]}', _BLOCK_C) for i in range(4, 8)},
    'mixed_8': ('Mixed_7a', _BLOCK_D),
    'mixed_9': ('Mixed_7b', _BLOCK_E),
    'mixed_10': ('Mixed_7c', _BLOCK_E),
}
_CLASSES = 1008  # the original graph's logits, unused by the pool features


def module_name(conv: str) -> str:
    """The weights file's conv name ('mixed_9.tower_conv') -> torch-fidelity's module
    ('Mixed_7b.branch3x3_1')."""
    if conv in _STEM:
        return _STEM[conv]
    block, _, branch = conv.partition('.')
    module, branches = _BLOCKS[block]
    return f'{module}.{branches[branch]}'


def state_dict(path: str | os.PathLike[str]) -> dict:
    """torch-fidelity's FeatureExtractorInceptionV3 state dict holding the weights at `path`
    (the graph's batch norms have no scale: weight 1)."""
    import torch

    tensors = {}
    for conv, leaves in inception.read_convs(path).items():
        leaf = {name: torch.from_numpy(value.astype(np.float32)) for name, value in leaves.items()}
        module = module_name(conv)
        tensors |= {
            f'{module}.conv.weight': leaf['weight'],
            f'{module}.bn.weight': torch.ones_like(leaf['beta']),
            f'{module}.bn.bias': leaf['beta'],
            f'{module}.bn.running_mean': leaf['mean'],
            f'{module}.bn.running_var': leaf['var'],
            f'{module}.bn.num_batches_tracked': torch.tensor(0),
        }
    tensors['fc.weight'] = torch.zeros(_CLASSES, inception.FEATURE_DIM)
    tensors['fc.bias'] = torch.zeros(_CLASSES)
    return tensors


def save_weights(path: str | os.PathLike[str], out: str | os.PathLike[str]) -> Path:
    """Writes `state_dict(path)` to `out` (a .pth torch-fidelity loads); returns `out`."""
    import torch

    torch.save(state_dict(path), out)
    return Path(out)


def feature_extractor(weights_pth: str | os.PathLike[str]):
    """torch-fidelity's Inception on `weights_pth`, giving the 2048 pool features."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    return FeatureExtractorInceptionV3(
        'inception-v3-compat', ['2048'], feature_extractor_weights_path=str(weights_pth)
    )


def fid(first: str, second: str, weights_pth: str | os.PathLike[str]) -> float:
    """torch-fidelity's FID between two image folders, on CPU, nothing cached."""
    import torch_fidelity

    metrics = torch_fidelity.calculate_metrics(
        input1=first,
        input2=second,
        fid=True,
        cuda=False,
        cache=False,
        verbose=False,
        feature_extractor_weights_path=str(weights_pth),
    )
    return float(metrics['frechet_inception_distance'])


def png_folder(spec: str, folder: Path) -> str:
    """`spec` itself when it is a folder, else its images written to `folder` as RGB PNGs
    (000000.png, ...), which torch-fidelity reads as gen_models.score reads `spec`."""
    if Path(spec).is_dir():
        return spec
    from PIL import Image

    images, _ = score.load_images(spec)
    shutil.rmtree(folder, ignore_errors=True)  # this module's own folder: no stale images
    folder.mkdir(parents=True)
    for index, image in enumerate(images):
        rgb = np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image
        Image.fromarray(rgb).save(folder / f'{index:06d}.png')
    return str(folder)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('first', help='a folder of images, an .npz or dataset:split[:a:b]')
    parser.add_argument('second', help='a folder of images, an .npz or dataset:split[:a:b]')
    parser.add_argument('--out', default='runs/torch_fidelity_fid.json', help='JSON result')
    parser.add_argument('--weights', default='', help="FID Inception .npz ('': the default)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        folders = [
            png_folder(spec, out.parent / f'{out.stem}_sets' / str(index))
            for index, spec in enumerate((args.first, args.second))
        ]
    except score.ImageSetError as error:
        sys.exit(f'torch_fidelity_fid: {error}')
    weights = inception.inception_path(args.weights)
    pth = save_weights(weights, out.with_suffix('.pth'))
    start = time.perf_counter()
    value = fid(*folders, pth)
    result = {
        'fid': value,
        'seconds': time.perf_counter() - start,
        'sets': [args.first, args.second],
        'folders': folders,
        'weights': str(weights),
        'weights_sha256': inception.file_checksum(weights),
    }
    logs.write_json(out, result)
    print(json.dumps(result, indent=2))


if __name__ == '__main__':
    main()
