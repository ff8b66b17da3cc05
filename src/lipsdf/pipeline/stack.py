"""``fit-many`` with stacked training: many shapes' networks trained together, a batch of them per step.

Each shape is prepared as :func:`~lipsdf.pipeline.single.fit` prepares it (its plan, its staging folder, its
dataset, sampled on the fit's device), the shapes whose runs agree (dimension, mode, network, training
settings, points) are trained in groups of up to ``stack`` by
:func:`~lipsdf.training.stacked.train_stacked`, and each shape is then finished by ``fit`` itself, which
finds its dataset and its trained field in the staging folder and goes on with the contour, the picture and
the evaluation. The epochs of a group are those that the time budget of its first shape buys for one
network alone, so every shape trains as it would have alone (``tests/pipeline/test_stack.py``).

A group whose training fails (a diverging shape) leaves its shapes to be fitted one by one. An interrupted
group leaves the datasets, which a rerun's fits resume from.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Callable, Iterator

from lipsdf.collection import Row
from lipsdf.dataset import PointDataset
from lipsdf.errors import LipsdfError
from lipsdf.files import atomic_output
from lipsdf.pipeline.options import FitOptions
from lipsdf.pipeline.single import STAGING, FitPlan, plan_fit, sample_dataset, size_training, write_plan
from lipsdf.training import Trainer, train_stacked

STACK_SIZE = 16  # networks a stacked step trains at once on a GPU, by default
Prepared = tuple[dict[str, Any], FitPlan, PointDataset, float]  # task, plan, dataset, sampling seconds


def fit_stacked(tasks: list[dict[str, Any]], stack: int, finish: Callable[[dict[str, Any]], Row]) -> Iterator[Row]:
    """The rows of ``tasks`` (``fit_many``'s), their networks trained ``stack`` at a time; ``finish`` fits
    one task as a worker would (here: resumes the prepared fit)."""
    prepared: list[Prepared] = []
    for task in tasks:
        if task["resume"]:  # an unfinished fit has its own checkpoint: it goes on alone
            yield finish(task)
            continue
        try:
            prepared.append(_prepare(task, warm_up=not prepared))  # the first loads the kernels
        except (LipsdfError, OSError):
            yield finish(task)  # the failure said by the fit itself, as for any worker
    for group in _groups(prepared, stack):
        shared = _train_group(group)
        for task, _, _, sampling in group:
            row = finish(dict(task, resume=True))
            if shared is not None and row.status == "done":
                row = _with_shared_seconds(task, row, sampling, shared, len(group))
            yield row


def _prepare(task: dict[str, Any], warm_up: bool) -> Prepared:
    """A fit's first stage, as ``fit`` runs it: plan, a fresh staging folder with ``plan.json``, the dataset
    (``warm_up``: and on a GPU, the training kernels loaded, so that a step's cost is timed warm)."""
    started = time.perf_counter()
    plan = plan_fit(task["source"], FitOptions(**task["options"]))
    staging = Path(task["output"]) / STAGING
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    write_plan(staging, plan, task["fingerprint"])
    dataset = sample_dataset(plan, quiet=True, warm_up=warm_up)
    dataset.save(plan.files(staging)["dataset"])
    return task, plan, dataset, time.perf_counter() - started


def _groups(prepared: list[Prepared], stack: int) -> list[list[Prepared]]:
    """Runs that can share a step, ``stack`` at most a group, in input order."""
    by_key: dict[str, list[Prepared]] = {}
    for item in prepared:
        _, plan, dataset, _ = item
        key = json.dumps([plan.shape.dim, plan.mode, plan.model, {**asdict(plan.training), "epochs": None},
                          plan.budget is None, len(dataset.points)], sort_keys=True, default=str)
        by_key.setdefault(key, []).append(item)
    return [items[start:start + stack] for items in by_key.values() for start in range(0, len(items), stack)]


def _train_group(group: list[Prepared]) -> float | None:
    """Train a group's networks together and write each field into its staging folder; the seconds it took,
    or None when it failed (its shapes are then trained one by one by their fits)."""
    started = time.perf_counter()
    _, first, first_data, sampling = group[0]
    try:
        if first.budget is not None and first.budget.epochs is None:  # what the budget buys one network alone
            first = size_training(first, first_data, started - sampling)
        plans = [replace(plan, budget=first.budget, training=first.training) for _, plan, _, _ in group]
        trainers = []
        for (task, _, dataset, _), plan in zip(group, plans):
            staging = Path(task["output"]) / STAGING
            write_plan(staging, plan, task["fingerprint"])  # a resume of the fit trains these epochs
            files = plan.files(staging)
            trainers.append(Trainer(dataset, plan.model, plan.training, device=str(plan.device),
                                    output=files["field"], log=files["log"]))
        fields = train_stacked(trainers)
    except LipsdfError:
        for task, plan, _, _ in group:
            plan.files(Path(task["output"]) / STAGING)["field"].unlink(missing_ok=True)
        return None
    for field, plan, (task, _, _, _) in zip(fields, plans, group):
        if plan.budget is not None:  # the field says what its epochs were chosen for, as fit's do
            field.summary["budget"] = plan.budget.to_dict()
        field.summary["stacked"] = len(group)
        field.save(plan.files(Path(task["output"]) / STAGING)["field"])
    return time.perf_counter() - started


def _with_shared_seconds(task: dict[str, Any], row: Row, sampling: float, training: float, count: int) -> Row:
    """The row (and ``metrics.json``) with the seconds a shape really cost: its own sampling, its share of the
    group's training, and the rest of its fit."""
    path = Path(task["output"]) / "metrics.json"
    metrics = json.loads(path.read_text())
    seconds = metrics["seconds"]
    seconds.update(sample=round(sampling, 2), train=round(training / count, 2), stacked_with=count)
    seconds["total"] = round(sum(value for key, value in seconds.items()
                                 if key not in ("total", "stacked_with")), 2)
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(metrics, indent=2))
    return Row.from_metrics(row.name, row.status, row.input, metrics)
