"""Training a field on a :class:`~lipsdf.dataset.PointDataset`.

- :mod:`~lipsdf.training.config`: :class:`TrainingConfig`, the schedules, the default model and loss;
- :mod:`~lipsdf.training.step`: the step on the device, the optimiser, the run's state, the step's cost;
- :mod:`~lipsdf.training.offset`: where the trained field's zero level goes;
- :mod:`~lipsdf.training.log`, :mod:`~lipsdf.training.checkpoints`: the epoch log, checkpoints and resuming;
- :mod:`~lipsdf.training.trainer`: :class:`Trainer`, its :class:`Callback` hooks, and :func:`train`;
- :mod:`~lipsdf.training.stacked`: several runs' networks trained in one batched step.
"""

from lipsdf.training.checkpoints import read_checkpoint, training_state
from lipsdf.training.config import (BF16_SHARE, DEFAULT_ARCH, DEFAULT_LR, MODEL_SIZES, RECIPES, Schedule,
                                    TrainingConfig, field_kind, model_config)
from lipsdf.training.log import EpochLog
from lipsdf.training.offset import OffsetContext, zero_level_offset
from lipsdf.training.step import StepCost, TrainingState, bf16_is_fast, build_optimiser, using_matmul_precision
from lipsdf.training.trainer import Callback, EpochRecords, Trainer, TrainingDiverged, train
from lipsdf.training.stacked import StackedNetworks, train_stacked

__all__ = ["BF16_SHARE", "DEFAULT_ARCH", "DEFAULT_LR", "MODEL_SIZES", "RECIPES", "Callback", "EpochLog", "EpochRecords",
           "OffsetContext", "Schedule", "StackedNetworks", "StepCost", "Trainer", "TrainingConfig",
           "TrainingDiverged", "TrainingState", "bf16_is_fast", "build_optimiser", "field_kind", "model_config",
           "read_checkpoint", "train", "train_stacked", "training_state", "using_matmul_precision",
           "zero_level_offset"]
