"""Fits sized by the clock: the epochs a budget buys follow the measured step cost, are recorded, and
repeat exactly with --epochs."""

import json

import numpy as np
import pytest

from lipsdf.cli import main
from lipsdf.errors import LipsdfError
from lipsdf.pipeline import FitOptions, fit, parse_duration, plan_fit
from lipsdf.training import StepCost, Trainer

SMALL = FitOptions(sampling={"n": 1000, "n_test": 200}, model={"layers": 2, "width": 16}, resolution=32,
                   training={"batch_size": 1000}, time=12, seed=0,
                   evaluation={"n_uniform": 200, "n_near": 200, "n_pairs": 200, "n_surface": 200})


def _faked_cost(monkeypatch, seconds_per_step):
    """A machine whose training step costs ``seconds_per_step`` (one step an epoch here), as measured."""
    monkeypatch.setattr(Trainer, "step_cost", lambda self, seconds=1.0: StepCost({"float32": seconds_per_step}))


def test_a_machine_twice_as_fast_trains_twice_the_epochs(tmp_path, monkeypatch):
    epochs = {}
    for cost in (0.1, 0.05):
        _faked_cost(monkeypatch, cost)
        result = fit("builtin:circle", tmp_path / str(cost), SMALL)
        budget = result.settings["budget"]
        assert budget["seconds"] == 12 and budget["step_seconds"] == {"float32": cost}
        assert result.settings["training"]["epochs"] == budget["epochs"] == result.field.summary["epochs"]
        assert result.field.summary["budget"]["epochs"] == budget["epochs"]  # the field says what it was sized for
        metrics = json.loads((tmp_path / str(cost) / "metrics.json").read_text())
        assert metrics["settings"]["budget"]["epochs"] == budget["epochs"]
        epochs[cost] = budget["epochs"]
        # the epochs fill what the budget leaves after sampling and the stages after training
        assert budget["train_seconds"] <= 12 - budget["finish_seconds"]
    assert 1.9 <= epochs[0.05] / epochs[0.1] <= 2.1


def test_a_machine_slower_than_measured_stops_training_at_the_deadline(tmp_path, monkeypatch):
    _faked_cost(monkeypatch, 1e-6)  # measured a million times too fast: the plan would take hours
    result = fit("builtin:circle", tmp_path / "slow", SMALL.merged({"time": 9}))
    planned, trained = result.settings["budget"]["epochs"], result.field.summary["epochs"]
    assert planned > 100_000 and 1 <= trained < planned
    metrics = json.loads((tmp_path / "slow" / "metrics.json").read_text())
    assert metrics["trained_epochs"] == trained and metrics["stopped"].startswith("time budget: stopped after")
    assert result.field.summary["complete"]  # the fit's field, not a checkpoint to resume


def test_a_budget_run_is_repeated_exactly_with_its_epochs(tmp_path):
    timed = fit("builtin:circle", tmp_path / "timed", SMALL.merged({"time": 3}))
    epochs = timed.settings["budget"]["epochs"]
    again = fit("builtin:circle", tmp_path / "again", SMALL.merged({"epochs": epochs}))
    assert again.settings["budget"] is None and again.settings["training"]["epochs"] == epochs
    x = np.random.default_rng(0).uniform(-1, 1, size=(500, 2))
    np.testing.assert_array_equal(timed.field(x), again.field(x))


def test_epochs_override_the_budget_and_the_cli_reads_durations(tmp_path, capsys):
    assert plan_fit("builtin:circle", time="1m", training={"epochs": 7}).budget is None
    assert plan_fit("builtin:circle", quick=True).budget.seconds == 60
    assert [parse_duration(text) for text in ("2m", "1h", "0.5m", "15")] == [120, 3600, 30, 15]
    for bad in ("soon", "-3s", "0", "5 min"):
        with pytest.raises(LipsdfError):
            parse_duration(bad)
    with pytest.raises(SystemExit) as stop:
        main(["fit", "builtin:circle", "--time", "soon", "-o", str(tmp_path / "o"), "-q"])
    assert stop.value.code == 2
    assert "cannot read the duration" in capsys.readouterr().err and not (tmp_path / "o").exists()
