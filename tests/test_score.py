"""python -m gen_models.score: any two image sets (npz, folder, dataset split, statistics),
scored with the evaluation's features and formulas; bad sets get one line before any work."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from gen_models import score
from gen_models.metrics import features, fid
from gen_models.nets import inception
from tests.conftest import REPO


@pytest.fixture(scope='module')
def net():
    if not inception.inception_path().is_file():
        pytest.skip(f'FID Inception weights missing at {inception.inception_path()}')
    return features.inception_net(batch_size=4)


def _images(seed: int, num: int = 6, shape=(16, 16, 3)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (num, *shape), dtype=np.uint8)


def _args(*argv: str):
    return score._parser().parse_args([*argv, '--batch_size=4'])


def test_two_npz_sets_score_as_the_features_say(net, tmp_path):
    a, b = _images(0), _images(1)
    np.savez(tmp_path / 'a.npz', images=a)
    np.savez(tmp_path / 'b.npz', b)  # a lone array under any name
    out = tmp_path / 'scores.json'
    results = score.run(
        _args(
            str(tmp_path / 'a.npz'),
            str(tmp_path / 'b.npz'),
            '--metrics=fid,kid',
            '--kid_subset_size=4',
            f'--out={out}',
        )
    )
    fa, fb = features.extract_features(net, a), features.extract_features(net, b)
    assert results['metrics']['fid'] == pytest.approx(fid.fid(fa, fb), rel=1e-6)
    assert results['metrics']['kid'] == pytest.approx(
        fid.kid(fa, fb, num_subsets=100, subset_size=4, seed=0)[0], rel=1e-6
    )
    written = json.loads(out.read_text())
    assert written['protocol']['feature_net_sha256'] == net.checksum
    about = written['protocol']['sets'][str(tmp_path / 'a.npz')]
    assert about['num_images'] == 6 and about['shape'] == [16, 16, 3]


def test_a_folder_of_pngs_is_the_same_set_as_its_npz(net, tmp_path):
    images = _images(2)
    folder = tmp_path / 'pngs'
    folder.mkdir()
    for index, image in enumerate(images):
        Image.fromarray(image).save(folder / f'{index:06d}.png')
    np.savez(tmp_path / 'same.npz', images=images)
    loaded, about = score.load_images(str(folder))
    np.testing.assert_array_equal(loaded, images)
    results = score.run(
        _args(str(folder), str(tmp_path / 'same.npz'), f'--out={tmp_path / "s.json"}')
    )
    assert abs(results['metrics']['fid']) < 1e-3  # one set against itself


def test_statistics_stand_in_for_a_set_in_fid(net, tmp_path):
    a, b = _images(3), _images(4)
    np.savez(tmp_path / 'a.npz', images=a)
    np.savez(tmp_path / 'b.npz', images=b)
    stats = tmp_path / 'b_stats.npz'
    score.run(_args(str(tmp_path / 'b.npz'), '--reference_only', f'--out={stats}'))
    direct = score.run(
        _args(str(tmp_path / 'a.npz'), str(tmp_path / 'b.npz'), f'--out={tmp_path / "1.json"}')
    )
    via = score.run(_args(str(tmp_path / 'a.npz'), str(stats), f'--out={tmp_path / "2.json"}'))
    # Equal up to the round-off of two algorithms: moments (statistics) against the sample-space
    # trace that fid.fid takes with fewer samples than dimensions.
    assert via['metrics']['fid'] == pytest.approx(direct['metrics']['fid'], rel=1e-6)
    with pytest.raises(score.ImageSetError, match='statistics serve FID alone'):
        score.run(_args(str(tmp_path / 'a.npz'), str(stats), '--metrics=fid,kid'))
    with pytest.raises(score.ImageSetError, match='only be the second set'):
        score.run(_args(str(stats), str(tmp_path / 'a.npz')))


def test_a_dataset_split_is_a_set(data_dir, tmp_path):
    images, about = score.load_images('shapes:test:0:5', data_dir)
    assert images.shape[0] == 5 and about['split'] == 'test[0:5]' and images.dtype == np.uint8


def _bad(tmp_path, *argv):
    result = subprocess.run(
        [sys.executable, '-m', 'gen_models.score', *argv],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    return line


def test_bad_sets_get_one_line_naming_them(tmp_path):
    mixed = tmp_path / 'mixed'
    mixed.mkdir()
    Image.fromarray(_images(0, 1)[0]).save(mixed / 'a.png')
    Image.fromarray(_images(0, 1, (8, 8, 3))[0]).save(mixed / 'b.png')
    assert 'b.png: shape (8, 8, 3)' in _bad(tmp_path, str(mixed), str(mixed))
    empty = tmp_path / 'empty'
    empty.mkdir()
    assert f'{empty}: no images' in _bad(tmp_path, str(empty), str(mixed))
    broken = tmp_path / 'broken'
    broken.mkdir()
    (broken / 'x.png').write_bytes(b'not a png')
    assert 'x.png: not a readable image' in _bad(tmp_path, str(broken), str(mixed))
    np.savez(tmp_path / 'few.npz', images=_images(0, 3))
    line = _bad(tmp_path, str(tmp_path / 'few.npz'), str(tmp_path / 'few.npz'), '--metrics=kid')
    assert 'few.npz: 3 images, fewer than --kid_subset_size=1000' in line
