"""torch-fidelity's Inception on the project's weights: a second, independent network code for
the FID features (the benchmarks.torch_fidelity_fid path), checked against the Flax port."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import inception_benchmark, torch_fidelity_fid
from gen_models.nets import inception

torch = pytest.importorskip('torch', reason='torch-fidelity needs torch (.[bench])')
pytest.importorskip('torch_fidelity', reason='the second FID path needs torch-fidelity (.[bench])')


def test_every_conv_has_one_torch_fidelity_module():
    path = inception.inception_path()
    if not path.is_file():
        pytest.skip(f'FID Inception weights missing at {path}')
    convs = inception.read_convs(path)
    modules = [torch_fidelity_fid.module_name(conv) for conv in convs]
    assert len(convs) == 94 and len(set(modules)) == len(modules)
    assert torch_fidelity_fid.module_name('mixed_9.tower_1_mixed_conv') == (
        'Mixed_7b.branch3x3dbl_3a'
    )


def test_torch_fidelity_features_on_the_weights_match_the_port(tmp_path):
    path = inception.inception_path()
    if not path.is_file():
        pytest.skip(f'FID Inception weights missing at {path}')
    # Loads strictly: every module of torch-fidelity's network gets a tensor.
    extractor = torch_fidelity_fid.feature_extractor(
        torch_fidelity_fid.save_weights(path, tmp_path / 'inception.pth')
    )
    images = inception_benchmark.random_images(2, 32, 3, seed=1)
    with torch.inference_mode():
        (features,) = extractor(torch.from_numpy(images).permute(0, 3, 1, 2).contiguous())
    port = np.asarray(inception.feature_fn()(inception.load_params(path), images))
    assert np.abs(port).max() > 1
    np.testing.assert_array_less(np.abs(features.numpy() - port).max(), 1e-5)


def test_sets_that_are_not_folders_become_rgb_png_folders_read_back_exactly(tmp_path):
    from gen_models import score

    grey = inception_benchmark.random_images(3, 8, 1, seed=2)
    np.savez(tmp_path / 'grey.npz', images=grey)
    folder = torch_fidelity_fid.png_folder(str(tmp_path / 'grey.npz'), tmp_path / 'set')
    (tmp_path / 'set' / 'stale.png').write_bytes(b'')  # a rerun starts from an empty folder
    folder = torch_fidelity_fid.png_folder(str(tmp_path / 'grey.npz'), tmp_path / 'set')
    read, _ = score.load_images(folder)
    np.testing.assert_array_equal(read, np.repeat(grey, 3, axis=-1))
    assert torch_fidelity_fid.png_folder(folder, tmp_path / 'other') == folder
