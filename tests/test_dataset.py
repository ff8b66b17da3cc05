import json

import numpy as np
import pytest

from lipsdf.dataset import FORMAT_VERSION, PointDataset
from lipsdf.errors import DatasetError, InputFileError
from lipsdf.geometry.primitives import circle
from lipsdf.sampling import sample


@pytest.fixture(scope="module")
def dataset():
    return sample(circle(), "signed", n=1000, n_test=200, seed=3, source={"path": "builtin:circle"})


def test_save_load_round_trip(tmp_path, dataset):
    path = dataset.save(tmp_path / "circle.npz")
    loaded = PointDataset.load(path)
    assert loaded.mode == "signed" and loaded.kind == "polyline2d"
    for key, value in dataset.arrays.items():
        np.testing.assert_array_equal(loaded.arrays[key], value)
    np.testing.assert_array_equal(loaded.normalization.center, dataset.normalization.center)
    assert loaded.normalization.scale == dataset.normalization.scale
    meta = loaded.metadata
    assert meta["format_version"] == FORMAT_VERSION and meta["seed"] == 3 and meta["source"]["path"] == "builtin:circle"
    assert meta["counts"] == {"points": 1000, "surface": 250, "test": 200, "inside": 500, "outside": 500}


def test_other_format_versions_are_refused(tmp_path, dataset):
    path = dataset.save(tmp_path / "circle.npz")
    with np.load(path) as archive:
        arrays = {k: archive[k] for k in archive.files}
    header = json.loads(str(arrays.pop("metadata")))
    header["format_version"] = FORMAT_VERSION + 1
    np.savez(path, metadata=np.array(json.dumps(header)), **arrays)
    with pytest.raises(DatasetError, match="format version"):
        PointDataset.load(path)


def test_not_a_dataset(tmp_path):
    np.savez(tmp_path / "points.npz", points=np.zeros((3, 3)))
    with pytest.raises(DatasetError, match="not a lipsdf dataset"):
        PointDataset.load(tmp_path / "points.npz")
    (tmp_path / "garbage.npz").write_bytes(b"not a zip")
    with pytest.raises(DatasetError):
        PointDataset.load(tmp_path / "garbage.npz")
    with pytest.raises(InputFileError):
        PointDataset.load(tmp_path / "missing.npz")


def test_failed_save_leaves_no_file_and_keeps_the_old_one(tmp_path, dataset, monkeypatch):
    path = tmp_path / "circle.npz"
    path.write_bytes(b"previous content")

    def broken_savez(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError):
        dataset.save(path)
    assert path.read_bytes() == b"previous content"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["circle.npz"]


def test_saved_files_get_the_usual_permissions(tmp_path, dataset):
    import os

    mask = os.umask(0o022)
    try:
        path = dataset.save(tmp_path / "circle.npz")
    finally:
        os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o644
