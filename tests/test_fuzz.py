"""Hostile files for every reader and loader: each case ends in a valid result or one LipsdfError line.

Hypothesis draws (format, mutation, seed) cases, derandomized so that CI runs the same cases every
time; ``LIPSDF_FUZZ_EXAMPLES`` raises their number, and ``benchmarks/robustness.py`` is the long mode.
"""

import os
import zipfile

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st

from benchmarks import fuzzing
from lipsdf.cli import main
from lipsdf.errors import DatasetError, InputFileError, LipsdfError
from lipsdf.dataset import PointDataset
from lipsdf.field import NeuralField
from lipsdf.geometry.io import load_shape

EXAMPLES = int(os.environ.get("LIPSDF_FUZZ_EXAMPLES", "3000"))


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    return fuzzing.seed_files(tmp_path_factory.mktemp("seeds"))


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("work")


def test_the_seeds_are_valid(seeds):
    for fmt, path in seeds.items():
        assert fuzzing.run_case(fmt, path).kind == "valid", fmt


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(fmt=st.sampled_from(["obj", "ply-binary", "ply-ascii", "off", "stl-binary", "stl-ascii", "mesh", "xyz", "npz",
                            "geojson", "dataset", "field"]),
       mutation=st.sampled_from(sorted(fuzzing.MUTATIONS)), seed=st.integers(0, 2 ** 32 - 1))
def test_every_reader_gives_a_result_or_one_clear_error(seeds, work, fmt, mutation, seed):
    path = fuzzing.mutated_case(seeds, fmt, mutation, seed, work)
    outcome = fuzzing.run_case(fmt, path)
    assert not outcome.kind.startswith("bug"), f"{fmt} {mutation} seed {seed}: {outcome.kind}: {outcome.message}"
    assert outcome.seconds < fuzzing.TIME_LIMIT


@pytest.mark.parametrize("fmt", ["obj", "ply-binary", "stl-binary", "npz", "dataset", "field"])
def test_a_directory_given_as_a_file_is_an_error(tmp_path, fmt, seeds):
    folder = tmp_path / f"folder{seeds[fmt].suffix}"
    folder.mkdir()
    with pytest.raises(LipsdfError):
        fuzzing.load(fmt, folder)


def test_a_huge_promised_count_allocates_nothing(tmp_path):
    # a PLY header claiming 10^12 vertices, then three of them
    path = tmp_path / "huge.ply"
    path.write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 1000000000000\nproperty float x\n"
                     b"property float y\nproperty float z\nend_header\n" + np.zeros(9, "<f4").tobytes())
    outcome = fuzzing.run_case("ply-binary", path)
    assert outcome.kind == "error" and "promises" in outcome.message and outcome.peak_bytes < 1 << 20


# --------------------------------------------------------------------------- the two holes of the issue


def test_truncated_dataset_is_one_line_status_2(tmp_path, seeds, capsys):
    data = seeds["dataset"].read_bytes()
    (tmp_path / "t.npz").write_bytes(data[: len(data) // 2])
    assert main(["train", str(tmp_path / "t.npz"), "-o", str(tmp_path / "t.pt")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and "not a readable .npz" in err
    assert not (tmp_path / "t.pt").exists()


def test_truncated_binary_stl_names_the_file_problem(tmp_path, seeds, capsys):
    data = seeds["stl-binary"].read_bytes()
    (tmp_path / "t.stl").write_bytes(data[: len(data) - 30])
    assert main(["sample", str(tmp_path / "t.stl"), "-o", str(tmp_path / "t.npz")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "truncated" in err and "module" not in err


# --------------------------------------------------------------------------- untrusted fields and datasets


class Payload:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_a_field_carrying_a_pickle_payload_is_refused_without_running_it(tmp_path, seeds, monkeypatch):
    monkeypatch.chdir(tmp_path)
    state = torch.load(seeds["field"], weights_only=True)
    state["summary"] = Payload()
    torch.save(state, tmp_path / "evil.pt")
    with pytest.raises(InputFileError, match="not a readable lipsdf field"):
        NeuralField.load(tmp_path / "evil.pt")
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("edit, message", [
    (lambda s: s.update(model_config=s["model_config"].replace('"width": 8', '"width": 16')), "do not match"),
    (lambda s: s.update(model_config=s["model_config"].replace('"dim": 2', '"dim": 3')), "3D input"),
    (lambda s: s.update(model_config=s["model_config"].replace('"sll"', '"resnet"')), "unknown architecture"),
    (lambda s: s.update(model_config=s["model_config"].replace('"width": 8', '"width": 100000000')), "do not match"),
    (lambda s: s["weights"].popitem(), "do not match"),
    (lambda s: s.update(kind="sideways"), "kind"),
    (lambda s: s.update(normalization='{"center": [0, 0], "scale": -1}'), "invalid normalization"),
    (lambda s: s.update(model_config="{not json"), "malformed"),
    (lambda s: next(iter(s["weights"].values())).fill_(float("nan")), "NaN"),
])
def test_a_field_whose_metadata_disagrees_with_its_tensors_is_refused(tmp_path, seeds, edit, message):
    state = torch.load(seeds["field"], weights_only=True)
    edit(state)
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(InputFileError, match=message) as error:
        NeuralField.load(tmp_path / "bad.pt")
    assert str(error.value).count("is not a valid lipsdf field") == 1


@pytest.mark.parametrize("edit, message", [
    (lambda a: a.update(labels=a["labels"][:-1]), "'labels' has 199 entries for 200 points"),
    (lambda a: a.update(points=np.column_stack([a["points"], a["points"][:, 0]])), r"must be \(n, 2\)"),
    (lambda a: a.update(test_distances=a["test_distances"][:3]), "'test_distances' has 3 entries"),
    (lambda a: a.update(labels=a["labels"] * 2), "-1 or \\+1"),
    (lambda a: a.update(points=a["points"].astype(np.complex64)), "real numbers"),
    (lambda a: a["surface_points"].__setitem__((0, 0), np.inf), "NaN or infinite"),
])
def test_a_dataset_whose_arrays_disagree_is_refused(tmp_path, seeds, edit, message):
    with np.load(seeds["dataset"]) as archive:
        arrays = {name: archive[name] for name in archive.files}
    edit(arrays)
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DatasetError, match=message):
        PointDataset.load(tmp_path / "bad.npz")


def test_an_npz_with_object_arrays_is_refused_unpickled(tmp_path):
    np.savez(tmp_path / "objects.npz", points=np.array([Payload()], dtype=object))
    with pytest.raises(InputFileError, match="never unpickles"):
        load_shape(tmp_path / "objects.npz")


def test_a_zip_bomb_is_refused(tmp_path):
    header = b"\x93NUMPY\x01\x00v\x00{'descr': '<f8', 'fortran_order': False, 'shape': (50000000, 3), }" + b" " * 10
    header = header[:127] + b"\n"
    with zipfile.ZipFile(tmp_path / "bomb.npz", "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("points.npy", "w", force_zip64=True) as member:
            member.write(header)
            block = bytes(1 << 20)
            for _ in range(1200):
                member.write(block)
    with pytest.raises(InputFileError, match="zip bomb"):
        load_shape(tmp_path / "bomb.npz")
