"""Score any two image sets under this project's protocol (as `python -m pytorch_fid A B`).

  python -m gen_models.score runs/gan/export/samples.npz cifar10:train --metrics fid,kid
  python -m gen_models.score samples_png/ mnist:test:0:1000 --feature_net classifier \\
      --classifier_workdir runs/classifier_mnist --metrics fid,precision_recall
  python -m gen_models.score --reference_only cifar10:train --out cifar10_train_stats.npz

A set is an `.npz` (uint8 NHWC images under 'images', else its only array), a folder of
images (PNG/JPEG, read in sorted order, all of one size), `dataset:split[:start:stop]` of a
prepared dataset (e.g. `cifar10:train`, `mnist:test:0:1000`), or for FID only the `.npz`
of reference statistics that `--reference_only` writes (mean and covariance of a set's
features, with their protocol). Features of dataset sets are cached like evaluation's
reference features. Prints the values and writes them with the full protocol (`--out`,
default `scores.json`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from gen_models import config as cfg
from gen_models import data, schema, xla_settings
from gen_models.metrics import classifier_net, density_coverage, features, fid, precision_recall

METRICS = ('fid', 'kid', 'precision_recall', 'density_coverage')
IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp')


class ImageSetError(ValueError):
    """A set that cannot be scored; the message is one line naming it."""


def _dataset_config(name: str, data_dir: str) -> Any:
    dataset = schema.shared_defaults().dataset
    dataset.update(name=name, data_dir=data_dir)
    return dataset


def _split(spec: str) -> tuple[str, str]:
    """'dataset:split[:start:stop]' -> (dataset, TFDS split string)."""
    parts = spec.split(':')
    if len(parts) == 2:
        return parts[0], parts[1]
    if len(parts) == 4:
        return parts[0], f'{parts[1]}[{parts[2]}:{parts[3]}]'
    raise ImageSetError(f'{spec}: a dataset set is dataset:split or dataset:split:start:stop')


def _read_folder(path: Path) -> np.ndarray:
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ImageSetError(f'{path}: no images ({", ".join(IMAGE_SUFFIXES)}) in the folder')
    arrays = []
    for file in files:
        try:
            with Image.open(file) as image:
                array = np.asarray(image)
        except OSError as error:
            raise ImageSetError(f'{file}: not a readable image ({error})') from None
        array = array[..., None] if array.ndim == 2 else array
        if arrays and array.shape != arrays[0].shape:
            raise ImageSetError(
                f'{file}: shape {array.shape}, but {files[0].name} has {arrays[0].shape}: '
                'a set holds images of one size and channel count'
            )
        arrays.append(array)
    return np.stack(arrays)


def _read_npz(path: Path) -> np.ndarray:
    try:
        with np.load(path) as arrays:
            names = list(arrays.files)
            if 'images' not in names and len(names) != 1:
                raise ImageSetError(f"{path}: no 'images' array (has {', '.join(names)})")
            return arrays['images' if 'images' in names else names[0]]
    except (OSError, ValueError) as error:
        if isinstance(error, ImageSetError):
            raise
        raise ImageSetError(f'{path}: not a readable .npz ({error})') from None


def load_images(spec: str, data_dir: str = '') -> tuple[np.ndarray, dict[str, Any]]:
    """(uint8 NHWC images, what they are) of a set given as in the module docstring."""
    path = Path(spec)
    if path.is_dir():
        images, source = _read_folder(path), {'folder': str(path)}
    elif path.suffix == '.npz':
        if not path.is_file():
            raise ImageSetError(f'{path}: no such file')
        images, source = _read_npz(path), {'npz': str(path)}
    else:
        name, split = _split(spec)
        try:
            arrays = data.load_split_array(_dataset_config(name, data_dir), split)
        except (ValueError, FileNotFoundError) as error:
            raise ImageSetError(f'{spec}: {error}') from None
        images, source = arrays['image'], {'dataset': name, 'split': split}
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ImageSetError(
            f'{spec}: {images.dtype} images of shape {images.shape}; a set is uint8 (N, H, W, C) '
            'with C 1 or 3'
        )
    if len(images) < 2:
        raise ImageSetError(f'{spec}: {len(images)} images; a set needs at least 2')
    digest = hashlib.sha256(np.ascontiguousarray(images).tobytes()).hexdigest()
    return images, {
        **source,
        'num_images': len(images),
        'shape': list(images.shape[1:]),
        'sha256': digest,
    }


def feature_net(args: argparse.Namespace, image_shape: tuple[int, ...]) -> features.FeatureNet:
    """The network named by --feature_net (the classifier of --classifier_workdir)."""
    if args.feature_net == 'classifier':
        return classifier_net.load(args.classifier_workdir, args.batch_size, image_shape)[0]
    return features.inception_net(args.inception_path, args.batch_size)


def set_features(
    spec: str, images: np.ndarray, net: features.FeatureNet, args: argparse.Namespace
) -> np.ndarray:
    """Features of a set; a dataset set's are cached like evaluation's reference features."""
    if Path(spec).exists():
        return features.extract_features(net, images)
    name, split = _split(spec)
    return features.reference_features(
        net, _dataset_config(name, args.data_dir), split, None, features.stats_dir(args.stats_dir)
    )


def write_statistics(path: Path, feats: np.ndarray, protocol: dict[str, Any]) -> None:
    """The reference statistics file: the features' mean and covariance (what FID needs of
    a set; a few MB where the features of 50k images are 400), with their protocol."""
    mu, sigma = fid.gaussian_moments(feats)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, 'wb') as file:
        np.savez(file, mu=mu, sigma=sigma, protocol=json.dumps(protocol))


def read_statistics(path: Path) -> tuple[np.ndarray, np.ndarray, dict[str, Any]] | None:
    """(mu, sigma, protocol) of a statistics file; None for any other .npz."""
    with np.load(path) as arrays:
        if not {'mu', 'sigma', 'protocol'} <= set(arrays.files):
            return None
        return arrays['mu'], arrays['sigma'], json.loads(str(arrays['protocol']))


def compute(args: argparse.Namespace, first, second) -> tuple[dict[str, float], dict[str, Any]]:
    """(values, protocols) of the metrics between feature sets `first` and `second` (the
    latter may be statistics: (mu, sigma))."""
    values, protocols = {}, {}
    if isinstance(second, tuple):
        values['fid'] = fid.frechet_distance(*fid.gaussian_moments(first), *second)
        return values, {'fid': {'metric': 'FID (Heusel et al. 2017), against statistics'}}
    if 'fid' in args.metrics:
        values['fid'] = fid.fid(first, second)
        protocols['fid'] = {'metric': 'FID (Heusel et al. 2017)'}
    if 'kid' in args.metrics:
        values['kid'], values['kid_std'] = fid.kid(
            first, second, num_subsets=args.kid_subsets, subset_size=args.kid_subset_size, seed=0
        )
        protocols['kid'] = {
            'metric': 'KID (Binkowski et al. 2018): unbiased MMD^2, cubic polynomial kernel; '
            'kid_std is the std over subsets',
            'subsets': args.kid_subsets,
            'subset_size': args.kid_subset_size,
            'seed': 0,
        }
    if 'precision_recall' in args.metrics:
        values['precision'], values['recall'] = precision_recall.precision_recall(
            second, first, args.pr_neighbours
        )
        protocols['precision_recall'] = {
            'metric': 'improved precision and recall (Kynkaanniemi et al. 2019) of A against '
            'B, k-NN balls',
            'neighbours': args.pr_neighbours,
        }
    if 'density_coverage' in args.metrics:
        values['density'], values['coverage'] = density_coverage.density_coverage(
            second, first, args.dc_neighbours
        )
        protocols['density_coverage'] = {
            'metric': 'density and coverage (Naeem et al. 2020) of A against B, k-NN balls',
            'neighbours': args.dc_neighbours,
        }
    return values, protocols


def _check(args: argparse.Namespace, sets: dict[str, tuple[np.ndarray, dict]]) -> None:
    """Bad combinations, before any feature is computed."""
    unknown = set(args.metrics) - set(METRICS)
    if unknown:
        raise ImageSetError(
            f'--metrics: {", ".join(sorted(unknown))}; allowed {", ".join(METRICS)}'
        )
    if 'kid' in args.metrics:
        for name, (images, _) in sets.items():
            if images is not None and len(images) < args.kid_subset_size:
                raise ImageSetError(
                    f'{name}: {len(images)} images, fewer than --kid_subset_size='
                    f'{args.kid_subset_size}'
                )
    if args.feature_net == 'classifier' and not args.classifier_workdir:
        raise ImageSetError('--feature_net=classifier needs --classifier_workdir')


def _check_statistics(args: argparse.Namespace, stats: dict[str, Any]) -> None:
    """A statistics file is the second set, of FID alone."""
    if stats.get(args.sets[0]):
        raise ImageSetError(f'{args.sets[0]}: statistics can only be the second set (B)')
    if stats.get(args.sets[-1]) and set(args.metrics) != {'fid'}:
        raise ImageSetError(
            f'{args.sets[-1]}: statistics serve FID alone (--metrics={",".join(args.metrics)})'
        )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='python -m gen_models.score', description=__doc__.splitlines()[0]
    )
    parser.add_argument('sets', nargs='+', help='A B (or one set with --reference_only)')
    parser.add_argument('--metrics', type=lambda v: v.split(','), default=['fid'])
    parser.add_argument('--feature_net', choices=features.FEATURE_NETS, default='inception')
    parser.add_argument('--classifier_workdir', default='')
    parser.add_argument('--inception_path', default='')
    parser.add_argument('--batch_size', type=int, default=32, help='images per network call')
    parser.add_argument('--kid_subsets', type=int, default=100)
    parser.add_argument('--kid_subset_size', type=int, default=1000)
    parser.add_argument('--pr_neighbours', type=int, default=3)
    parser.add_argument('--dc_neighbours', type=int, default=5)
    parser.add_argument('--data_dir', default='', help="prepared datasets; '' -> $TFDS_DATA_DIR")
    parser.add_argument('--stats_dir', default='', help='reference-feature cache')
    parser.add_argument('--reference_only', action='store_true', help='write statistics of one set')
    parser.add_argument('--out', type=Path, default=None)
    return parser


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Scores `args.sets` (or writes the statistics of one); returns what was written."""
    expected = 1 if args.reference_only else 2
    if len(args.sets) != expected:
        raise ImageSetError(f'{expected} set(s) expected, got {len(args.sets)}: {args.sets}')
    stats = {
        s: read_statistics(Path(s)) for s in args.sets if s.endswith('.npz') and Path(s).is_file()
    }
    sets = {
        s: (None, stats[s][2]) if stats.get(s) else load_images(s, args.data_dir) for s in args.sets
    }
    _check_statistics(args, stats)
    _check(args, sets)
    shape = next(images.shape[1:] for images, _ in sets.values() if images is not None)
    net = feature_net(args, tuple(shape))
    for spec, found in stats.items():
        if found and found[2].get('feature_net_sha256') != net.checksum:
            raise ImageSetError(
                f'{spec}: statistics of the features of {found[2].get("feature_net")}, not of '
                f'{net.name} (sha256 {net.checksum[:12]})'
            )
    feats = {
        s: stats[s][:2] if stats.get(s) else set_features(s, images, net, args)
        for s, (images, _) in sets.items()
    }
    protocol = {'sets': {s: about for s, (_, about) in sets.items()}, **net.protocol()}
    if args.reference_only:
        out = args.out or Path('reference_statistics.npz')
        write_statistics(out, feats[args.sets[0]], protocol)
        return {'statistics': str(out), 'protocol': protocol}
    values, protocols = compute(args, feats[args.sets[0]], feats[args.sets[1]])
    results = {'metrics': values, 'protocol': protocol, 'metric_protocols': protocols}
    out = args.out or Path('scores.json')
    out.write_text(json.dumps(results, indent=2, sort_keys=True) + '\n')
    return results


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    xla_settings.enable_compilation_cache()  # a second scoring skips the network's compile
    try:
        results = run(args)
    except (ImageSetError, cfg.ConfigError, FileNotFoundError) as error:
        print(f'error: {error}', file=sys.stderr)
        return cfg.EXIT_USAGE
    for name, value in results.get('metrics', {}).items():
        print(f'{name}: {value:.6g}')
    print(results.get('statistics') or (args.out or 'scores.json'))
    return 0


if __name__ == '__main__':
    sys.exit(main())
