"""Checkpoints of an unfinished run: what they hold beyond the weights, and reading them back.

A checkpoint is a field file (:meth:`~lipsdf.field.NeuralField.save`) with a ``training`` entry of plain
values and tensors only, so that it loads with ``weights_only=True``; the final field has none.
"""

from __future__ import annotations

import copy
import json
import warnings
from dataclasses import asdict
from typing import Any, Optional

import torch

from lipsdf.dataset import PointDataset
from lipsdf.errors import InputFileError, LipsdfError
from lipsdf.field import NeuralField
from lipsdf.files import PathLike
from lipsdf.training.config import TrainingConfig
from lipsdf.training.log import EpochLog
from lipsdf.training.step import TrainingState


def checkpoint_state(state: TrainingState, epochs_done: int, seconds: float, config: TrainingConfig,
                     model_config: dict[str, Any], dataset: PointDataset) -> dict[str, Any]:
    """Everything a resumed run needs beyond the weights (tensors and plain values only)."""
    errors = {} if state.errors is None else {"errors": state.errors.detach().cpu().clone()}
    return {**errors, "epoch": epochs_done, "step": state.step, "optimizer": state.optimiser.state_dict(),
            "generator": state.generator.get_state().cpu(), "torch_rng": torch.get_rng_state(),
            "log": json.dumps(state.log.records), "seconds": seconds,
            "config": json.dumps(asdict(config)), "model_config": json.dumps(model_config),
            "dataset": json.dumps({"path": None if dataset.path is None else str(dataset.path),
                                   "digest": dataset.digest()})}


def restore(state: TrainingState, saved: dict[str, Any], dataset: PointDataset,
            log_path: Optional[PathLike]) -> TrainingState:
    """``state`` (a new run's) continued from the checkpoint's ``saved`` training state."""
    if json.loads(saved["dataset"])["digest"] != dataset.digest():
        raise LipsdfError("this dataset is not the one the checkpoint was trained on; resume with that one",
                          option="resume")
    state.model.load_state_dict(saved["weights"])
    state.optimiser.load_state_dict(saved["optimizer"])
    for group in state.optimiser.param_groups:  # keep the one learning-rate tensor the step writes
        group["lr"] = state.lr
    state.generator.set_state(saved["generator"].to(state.generator.get_state().device))
    torch.set_rng_state(saved["torch_rng"])
    if state.errors is not None and "errors" in saved:
        state.errors.copy_(saved["errors"].to(state.errors.device))
    state.log = EpochLog(log_path, json.loads(saved["log"]))
    state.step_count.fill_(int(saved["step"]))
    state.step = int(saved["step"])
    state.started -= float(saved["seconds"])
    state.first_epoch = state.checkpointed = int(saved["epoch"])
    state.good_state = copy.deepcopy(state.model.state_dict())
    return state


def read_checkpoint(path: PathLike) -> tuple[TrainingConfig, dict[str, Any], dict[str, Any]]:
    """The training config, model config and training state of an unfinished run's checkpoint, to pass to
    ``Trainer(..., resume=state)``; a complete field or a foreign file is a clear error.

    The checkpoint is first loaded as a field (every check of :meth:`NeuralField.load`), then its training
    state is read with ``weights_only=True``.
    """
    state = training_state(path)
    if state is None:
        raise InputFileError(f"{path} is a finished field, not a checkpoint of an unfinished run: nothing to "
                             "resume", option="resume")
    try:
        return TrainingConfig(**json.loads(state["config"])), json.loads(state["model_config"]), state
    except (KeyError, TypeError, ValueError) as exc:
        raise InputFileError(f"{path} has a malformed training state ({type(exc).__name__}: {exc})",
                             option="resume") from None


def training_state(path: PathLike) -> Optional[dict[str, Any]]:
    """The training state (with the weights) of a checkpoint, or None for a finished field."""
    NeuralField.load(path)  # every check of a field file first
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        contents = torch.load(path, map_location="cpu", weights_only=True)
    state = contents.get("training")
    if state is None:
        return None
    if not isinstance(state, dict):
        raise InputFileError(f"{path} has a malformed training state", option="resume")
    return dict(state, weights=contents["weights"])
