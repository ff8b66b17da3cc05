"""fit-many with stacked training: the same fields, metrics and files as shape-by-shape fits."""

import json

import pytest

from lipsdf.errors import LipsdfError
from lipsdf.pipeline.many import fit_many
from lipsdf.pipeline.single import STAGING

# float32 products: under bfloat16 a batched product rounds differently from a single one
COMMON = dict(quick=True, sampling={"n": 2000, "n_test": 400}, training={"epochs": 3, "matmul_precision": "float32"},
              resolution=48, evaluation={"n_uniform": 300, "n_near": 300, "n_pairs": 300, "n_surface": 300})
SHAPES = ["builtin:circle", "builtin:flower", "builtin:rectangle", "missing.obj"]


def test_stacked_fits_equal_fits_alone(tmp_path):
    alone = fit_many(SHAPES, tmp_path / "alone", workers=1, stack=1, **COMMON)
    together = fit_many(SHAPES, tmp_path / "together", stack=2, **COMMON)
    assert [row.status for row in together] == ["done", "done", "done", "failed"]
    for single, stacked in zip(alone[:3], together[:3]):
        assert stacked.chamfer_l1_rel == pytest.approx(single.chamfer_l1_rel, rel=1e-6)
        assert stacked.mae_rel == pytest.approx(single.mae_rel, rel=1e-6) and stacked.max_pair_ratio <= 1 + 1e-6
    flower = tmp_path / "together" / "flower"
    metrics = json.loads((flower / "metrics.json").read_text())
    assert metrics["seconds"]["stacked_with"] == 2 and metrics["seconds"]["train"] > 0
    assert not (flower / STAGING).exists()
    assert {path.name for path in flower.iterdir()} == {path.name for path in (tmp_path / "alone" / "flower").iterdir()}
    rectangle = json.loads((tmp_path / "together" / "rectangle" / "metrics.json").read_text())
    assert rectangle["seconds"]["stacked_with"] == 1  # the second group: what was left of three in twos


def test_a_stack_is_for_the_local_engine(tmp_path):
    with pytest.raises(LipsdfError, match="local engine"):
        fit_many(["builtin:circle"], tmp_path, stack=2, engine="ray")
