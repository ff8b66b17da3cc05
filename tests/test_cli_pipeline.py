"""`lipsdf fit` and `lipsdf eval`, and bad input across every command."""

import dataclasses
import json

import numpy as np
import pytest

from lipsdf.cli import main
from lipsdf.errors import LipsdfError
from lipsdf.geometry.io import load_shape

PNG = b"\x89PNG\r\n\x1a\n"
TINY_FIT = ["--quick", "-n", "4000", "--n-test", "1000", "--epochs", "8", "--layers", "6", "--width", "32",
            "--res", "128", "--eval-pairs", "5000", "--eval-n-near", "700", "-q"]


@pytest.fixture(scope="module")
def circle_fit(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fit") / "circle"
    assert main(["fit", "builtin:circle", "-o", str(folder), *TINY_FIT]) == 0
    return folder


def test_fit_writes_every_output_and_passes_options_through(circle_fit):
    names = sorted(p.name for p in circle_fit.iterdir())
    assert names == ["circle.jsonl", "circle.png", "circle.pt", "circle_contour.obj", "circle_signed.npz",
                     "metrics.json"]
    metrics = json.loads((circle_fit / "metrics.json").read_text())
    settings = metrics["settings"]
    assert settings["training"]["epochs"] == 8 and settings["sampling"]["n"] == 4000
    assert settings["model"]["layers"] == 6 and settings["mode"] == "signed"
    assert metrics["lipschitz"]["pairs"] == 5000 and metrics["distance"]["near"]["n"] == 700
    assert set(metrics["seconds"]) == {"sample", "train", "contour", "render", "eval", "total"}
    assert metrics["lipschitz"]["max_ratio"] <= 1 + 1e-5
    # the built-in circle has radius 1: the contour lies near it, and the metrics say so
    loop = load_shape(circle_fit / "circle_contour.obj")
    assert np.abs(np.linalg.norm(loop.vertices, axis=1) - 1.0).max() < 0.1
    assert metrics["surface"]["chamfer_l1_rel"] < 0.02
    assert (circle_fit / "circle.png").read_bytes()[:8] == PNG
    assert len((circle_fit / "circle.jsonl").read_text().splitlines()) == 8


def test_fit_of_an_open_3d_curve_is_unsigned_and_renders(tmp_path, capsys):
    out = tmp_path / "helix"
    code = main(["fit", "builtin:helix", "-o", str(out), "--quick", "-n", "3000", "--n-test", "500", "--epochs", "2",
                 "--layers", "4", "--width", "16", "--res", "32", "--image-size", "24"])
    printed = capsys.readouterr().out
    assert code == 0 and "largest |f(x) - f(y)| / |x - y|" in printed and "done in" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["kind"] == "unsigned" and "sign_accuracy" not in metrics["distance"]["all"]
    assert (out / "helix.png").read_bytes()[:8] == PNG
    assert not [p for p in out.iterdir() if p.name.startswith(".fit-")]  # no staging folder left


def test_eval_prints_a_table_and_writes_json(circle_fit, tmp_path, capsys):
    out = tmp_path / "m.json"
    code = main(["eval", str(circle_fit / "circle.pt"), "--against", "builtin:circle", "--n-uniform", "1000",
                 "--n-near", "1000", "--pairs", "5000", "--n-surface", "2000", "-o", str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    for row in ("mean |f - d|, uniform points", "sign accuracy", "|f| > true distance", "gradient norm",
                "Chamfer L1", "Chamfer L2", "Hausdorff", "normal consistency", "largest |f(x) - f(y)|"):
        assert row in printed
    metrics = json.loads(out.read_text())
    assert metrics["lipschitz"]["pairs"] == 5000 and metrics["distance"]["uniform"]["n"] == 1000
    # the same field, measured twice with the same seed, gives the same numbers
    assert main(["eval", str(circle_fit / "circle.pt"), "--against", "builtin:circle", "--n-uniform", "1000",
                 "--n-near", "1000", "--pairs", "5000", "--n-surface", "2000", "-o", str(tmp_path / "again.json"),
                 "-q"]) == 0
    again = json.loads((tmp_path / "again.json").read_text())
    assert again["distance"] == metrics["distance"] and again["surface"] == metrics["surface"]


def test_fit_that_fails_leaves_nothing_behind(tmp_path, capsys, monkeypatch):
    import lipsdf.pipeline.single

    def fail(*args, **kwargs):
        raise LipsdfError("the evaluation failed")

    monkeypatch.setattr(lipsdf.pipeline.single, "evaluate_field", fail)  # failed at the last stage
    assert main(["fit", "builtin:circle", "-o", str(tmp_path / "out"), *TINY_FIT]) == 2
    assert not (tmp_path / "out").exists()
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "mine.txt").write_text("user data")
    assert main(["fit", "builtin:circle", "-o", str(tmp_path / "kept"), *TINY_FIT]) == 2
    assert [p.name for p in (tmp_path / "kept").iterdir()] == ["mine.txt"]


def test_fit_interrupted_after_training_keeps_its_staging_to_resume(tmp_path, capsys, monkeypatch):
    import lipsdf.pipeline.single

    def stop(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(lipsdf.pipeline.single, "evaluate_field", stop)
    assert main(["fit", "builtin:circle", "-o", str(tmp_path / "out"), *TINY_FIT]) == 130
    assert "continue with `lipsdf fit --resume" in capsys.readouterr().err
    assert [p.name for p in (tmp_path / "out").iterdir()] == [".lipsdf-fit"]
    monkeypatch.undo()
    assert main(["fit", "--resume", str(tmp_path / "out"), "-q"]) == 0  # training is not redone: the field is final
    assert (tmp_path / "out" / "metrics.json").is_file() and not (tmp_path / "out" / ".lipsdf-fit").exists()


# --------------------------------------------------------------------------- bad input, every command


@pytest.fixture(scope="module")
def files(tmp_path_factory, circle_fit):
    folder = tmp_path_factory.mktemp("inputs")
    (folder / "junk.pt").write_bytes(b"not a field")
    (folder / "junk.obj").write_text("this is not an obj file\n")
    (folder / "empty.obj").write_text("")
    (folder / "nan.xyz").write_text("0 0 0\nnan 1 2\n")
    (folder / "a_file").write_text("x")
    return {"field2d": str(circle_fit / "circle.pt"), "data2d": str(circle_fit / "circle_signed.npz"),
            "obj2d": str(circle_fit / "circle_contour.obj"), **{p.stem: str(p) for p in folder.iterdir()}}


BAD_INPUT = [
    # wrong paths
    (["fit", "{tmp}/missing.obj", "-o", "{tmp}/o"], "no such file"),
    (["eval", "{tmp}/missing.pt", "--against", "builtin:circle"], "no such field file"),
    (["eval", "{field2d}", "--against", "{tmp}/missing.obj"], "no such file"),
    (["fit", "builtin:cirle", "-o", "{tmp}/o"], "unknown built-in shape"),
    # wrong kinds of file
    (["fit", "{junk}", "-o", "{tmp}/o"], "has no vertices"),
    (["fit", "{empty}", "-o", "{tmp}/o"], ""),
    (["fit", "{nan}", "-o", "{tmp}/o"], "finite"),
    (["train", "{obj2d}", "-o", "{tmp}/f.pt"], "dataset"),
    (["mesh", "{data2d}", "-o", "{tmp}/m.obj"], "field"),
    (["render", "{obj2d}", "-o", "{tmp}/m.png"], "field"),
    (["eval", "{junk}", "--against", "builtin:circle"], "not a readable lipsdf field"),
    (["eval", "{field2d}", "--against", "{field2d}"], "unknown shape format"),
    (["fit", "builtin:circle", "-o", "{a_file}"], "not a folder"),
    (["eval", "{field2d}", "--against", "builtin:circle", "-o", "{tmp}/m.txt"], "must end in .json"),
    # fields of the wrong dimension
    (["eval", "{field2d}", "--against", "builtin:sphere", "-o", "{tmp}/m.json"], "2D but the shape is 3D"),
    (["skeleton", "{field2d}", "--bounds", "0", "0", "0", "1", "1", "1", "-o", "{tmp}/m.ply"], "4 numbers"),
    (["mesh", "{field2d}", "--bounds", "0", "0", "0", "1", "1", "1", "-o", "{tmp}/m.obj"], "4 numbers"),
    # impossible options
    (["fit", "builtin:helix", "--mode", "signed", "-o", "{tmp}/o"], "needs inside/outside"),
    (["fit", "builtin:circle", "--lr", "-1", "-o", "{tmp}/o"], "must be positive"),
    (["fit", "builtin:circle", "--final-margin", "5", "-o", "{tmp}/o"], "final margin"),
    (["fit", "builtin:circle", "--final-margin", "0.015", "-o", "{tmp}/o"], "final margin"),  # signed: 0.01
    (["fit", "builtin:circle", "--uniform-fraction", "3", "-o", "{tmp}/o"], "uniform_fraction"),
    (["fit", "builtin:circle", "--arch", "sll", "--width", "1", "-o", "{tmp}/o"], "width"),
    (["fit", "builtin:circle", "--mode", "sal", "--compile", "-o", "{tmp}/o"], "--compile"),
    (["fit", "builtin:circle", "--device", "tpu", "-o", "{tmp}/o"], "unknown device"),
    (["eval", "{field2d}", "--against", "builtin:circle", "--device", "gpu0"], "unknown device"),
]


@pytest.mark.parametrize("argv, message", BAD_INPUT, ids=[" ".join(a[:2]) + f" #{i}" for i, (a, _) in
                                                          enumerate(BAD_INPUT)])
def test_bad_input_to_any_command_is_one_line_status_2_and_writes_nothing(files, tmp_path, capsys, argv, message):
    argv = [a.format(tmp=tmp_path, **files) for a in argv]
    before = set(tmp_path.rglob("*"))
    code = main(argv + (["-q"] if argv[0] == "fit" else []))
    printed = capsys.readouterr()
    assert code == 2, printed
    assert printed.err.count("\n") == 1 and "Traceback" not in printed.err and message in printed.err
    assert set(tmp_path.rglob("*")) == before


@pytest.mark.parametrize("argv", [
    ["eval", "x.pt"], ["fit", "builtin:circle", "--epochs", "0"], ["fit", "builtin:circle", "--res", "-4"],
    ["eval", "x.pt", "--against", "y.obj", "--pairs", "0"], ["fit", "builtin:circle", "--mode", "fancy"],
])
def test_bad_options_of_fit_and_eval_exit_2_in_one_line(capsys, argv):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.count("\n") == 1


@pytest.mark.parametrize("argv, flag", [
    (["sample", "builtin:helix", "-o", "{tmp}/h.npz"], "(option --mode)"),
    (["fit", "builtin:circle", "--uniform-fraction", "3", "-o", "{tmp}/o"], "(option --uniform-fraction)"),
    (["fit", "builtin:circle", "--final-margin", "5", "-o", "{tmp}/o"], "(option --final-margin)"),
    (["fit", "builtin:circle", "--mode", "sal", "--compile", "-o", "{tmp}/o"], "(option --compile)"),
])
def test_errors_name_the_flag_at_fault(tmp_path, capsys, argv, flag):
    assert main([a.format(tmp=tmp_path) for a in argv] + ["-q"]) == 2
    assert capsys.readouterr().err.rstrip().endswith(flag)


def test_help_shows_the_defaults_of_the_config_objects(capsys):
    from lipsdf.sampling import SamplingConfig
    from lipsdf.training import TrainingConfig

    for argv in (["sample", "--help"], ["train", "--help"], ["fit", "--help"]):
        with pytest.raises(SystemExit):
            main(argv)
    text = " ".join(capsys.readouterr().out.split())
    assert f"training points (default: {SamplingConfig().n})" in text
    assert f"passes over the training points (default: {TrainingConfig().epochs})" in text
    assert "passes over the training points (default: as many as fit in the time budget, --time)" in text
    assert "(default: 3 min on a CPU, 1 min with --quick; 20 s in 3D on a GPU)" in text
    assert "fit-hinge where it has exact distances" in text  # train's default loss
    assert "(default: 0.25; unsigned fields: 0.5)" in text
    sigmas = "0.003 0.01 0.05 in 3D, 0.002 0.006 0.03 in 2D; quick: 0.003 0.01 0.05, 0.002 0.006 0.03"
    assert f"(default: {sigmas}; unsigned fields: 0.01 0.05)" in text
    assert "(default: 0.005 in 3D, 0.01 in 2D; quick: 0.01, 0.01; unsigned fields: 0.005)" in text
    assert "(default: 0.999 in 3D, 0.95 in 2D; quick: 0.95, 0.95; unsigned fields: 0.999)" in text
    assert "measured" not in text and "benchmark" not in text  # no help text quotes a benchmark


def test_fit_trains_with_bfloat16_steps_only_where_the_cpu_has_them_natively(monkeypatch):
    """Emulated bfloat16 is slower than float32: the recipes use it only where it is native; the paper
    recipe stays float32; a GPU keeps TF32."""
    import lipsdf.pipeline.recipes
    from lipsdf.pipeline import recipe_for

    for native in (True, False):
        monkeypatch.setattr(lipsdf.pipeline.recipes, "bf16_is_fast", lambda device, native=native: native)
        for dim in (2, 3):
            for quick in (False, True):
                training = recipe_for(dim, quick).training
                assert training.get("matmul_precision") == ("bf16" if native else None)
                assert "matmul_precision" not in recipe_for(dim, quick, recipe="paper").training
                assert recipe_for(dim, quick, device="cuda").training["matmul_precision"] == "tf32"


def test_signed_fits_draw_most_points_near_the_surface():
    """Signed fits of meshes and outlines put 3/4 of their points near the surface, a third of those within
    about 0.003 of it (unit box; 0.002 for outlines), and outlines and quick fits train with their own
    optimiser settings; unsigned
    fits, point clouds and the paper recipe keep half of them uniform, and Adam's defaults."""
    from lipsdf.geometry.primitives import circle, sphere
    from lipsdf.geometry.shapes import PointCloud
    from lipsdf.pipeline import plan_fit
    from lipsdf.sampling import sample

    radius, center = 5.0, np.array([40.0, -10.0])
    shape = circle(radius, n=256, center=tuple(center))

    def share_near(plan):
        data = sample(plan.shape, plan.mode, dataclasses.replace(plan.sampling, n=20_000, n_test=100))
        world = data.world("points")
        distance = np.abs(np.linalg.norm(world - center, axis=1) - radius) / data.normalization.scale
        return (distance < 0.01).mean()

    signed = plan_fit(shape, mode="signed")
    assert signed.sampling.uniform_fraction == 0.25 and signed.sampling.near_sigmas == (0.002, 0.006, 0.03)
    # Gaussian offsets: all of the 0.002 group, 90% of the 0.006 group and 26% of the 0.03 group lie within 0.01
    # (0.54 in all; the 3D sigmas 0.003, 0.01, 0.05 would give 0.46)
    assert share_near(signed) > 0.5
    assert plan_fit(sphere(), mode="signed").sampling.near_sigmas == (0.003, 0.01, 0.05)
    paper = plan_fit(shape, mode="signed", training={"recipe": "paper"})
    assert paper.sampling.uniform_fraction == 0.5 and share_near(paper) < 0.3
    # unsigned data put a share of their points on the shape for its labels, so only their settings are compared
    unsigned = plan_fit(shape, mode="unsigned")
    assert unsigned.sampling.near_sigmas == (0.01, 0.05)
    cloud = plan_fit(PointCloud(sphere().vertices))  # a scan samples as a mesh does, in its own budget
    assert cloud.sampling.uniform_fraction == 0.25 and (cloud.recipe, cloud.budget.seconds) == ("scan", 180.0)
    # outlines and quick fits of meshes step further with a shorter memory; full fits of meshes do not
    quick_mesh = plan_fit(sphere(), mode="signed", quick=True)
    for plan in (signed, quick_mesh):
        assert (plan.training.learning_rate, plan.training.adam_beta2) == (1e-2, 0.95)
    for plan in (plan_fit(sphere(), mode="signed"), unsigned, cloud):  # Muon for the signed ones' matrices
        assert (plan.training.learning_rate, plan.training.adam_beta2) == (5e-3, 0.999)
    assert (paper.training.learning_rate, paper.training.adam_beta2) == (5e-4, 0.999)


def test_fit_checks_every_setting_before_sampling(tmp_path, monkeypatch):
    import lipsdf.pipeline.single

    monkeypatch.setattr(lipsdf.pipeline.single, "sample", lambda *args, **kwargs: pytest.fail("sampled anyway"))
    with pytest.raises(LipsdfError, match="width"):
        lipsdf.pipeline.single.fit("builtin:circle", tmp_path / "o", model={"arch": "sll", "width": 1})
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("argv, message", [
    (["fit"], "give a shape to fit"),
    (["train"], "give a dataset file"),
    (["fit", "builtin:circle", "--resume", "somewhere"], "keeps the shape, folder and settings"),
    (["fit", "--resume", "nowhere"], "no unfinished fit to resume"),
])
def test_missing_or_conflicting_inputs_are_one_line_status_2(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert list(tmp_path.iterdir()) == []


def test_sampling_in_a_forked_process_gives_the_same_dataset():
    """A GPU fit samples in a forked process while it loads its kernels: the data must not change."""
    from lipsdf.pipeline.single import plan_fit, sample_in_fork
    from lipsdf.sampling import sample

    plan = plan_fit("builtin:torus", sampling={"n": 3000, "n_test": 500}, device="cpu")
    ran = []
    forked = sample_in_fork(plan, quiet=True, meanwhile=lambda: ran.append(True))
    direct = sample(plan.shape, plan.mode, plan.sampling, source=plan.source, quiet=True)
    assert ran and forked.mode == direct.mode
    for name, array in direct.arrays.items():
        np.testing.assert_array_equal(forked.arrays[name], array)
