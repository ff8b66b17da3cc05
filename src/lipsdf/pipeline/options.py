"""What a user asks of a fit: :class:`FitOptions`, from keywords, the command line or a manifest row.

Every setting of ``lipsdf fit`` and ``lipsdf fit-many`` is one field here;
:func:`~lipsdf.pipeline.single.plan_fit` resolves them against the shape's
:class:`~lipsdf.pipeline.recipes.Recipe`, and a collection's fingerprint hashes :meth:`FitOptions.to_dict`.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Union

from lipsdf.errors import LipsdfError
from lipsdf.evaluate import EvaluationConfig
from lipsdf.sampling import SamplingConfig
from lipsdf.training import TrainingConfig

GROUPS = ("sampling", "training", "model", "evaluation")
MODEL_KEYS = ("arch", "layers", "width")
SCALAR_KEYS = ("mode", "kind", "quick", "time", "recipe", "seed", "resolution", "image_size", "device", "reference")
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: Union[str, float, int]) -> float:
    """Seconds in a duration: ``90``, ``90s``, ``10m``, ``1h``, ``1m30s``.

    Examples
    --------
    >>> parse_duration("90s"), parse_duration("10m"), parse_duration("1m30s"), parse_duration(45)
    (90.0, 600.0, 90.0, 45.0)
    """
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        seconds = float(text)
    else:
        words = str(text).strip().lower()
        if re.fullmatch(r"\d+(\.\d*)?", words):
            seconds = float(words)
        elif re.fullmatch(r"(\d+(\.\d*)?[smh])+", words):
            seconds = sum(float(number) * _UNITS[unit] for number, unit in re.findall(r"(\d+(?:\.\d*)?)([smh])", words))
        else:
            raise LipsdfError(f"cannot read the duration {text!r}; write it like 90s, 10m or 1m30s", option="time")
    if not seconds > 0:
        raise LipsdfError(f"a time budget must be positive, got {text!r}", option="time")
    return seconds


@dataclass(frozen=True)
class FitOptions:
    """The settings of one fit; ``None`` and empty groups mean the recipe's default.

    Attributes
    ----------
    mode : ``signed`` (default where the shape has an inside) or ``unsigned``; ``dist``/``sal``: baselines.
    kind : override the detected kind of a shape file.
    quick : a preview in about a minute.
    time : the whole fit's time budget in seconds (default: the recipe's); ``training["epochs"]`` overrides it.
    recipe : ``lipsdf`` (default) or ``paper``.
    seed : one seed for sampling, training and evaluation (a group's own ``seed`` wins).
    sampling, training, evaluation : overrides of the fields of :class:`~lipsdf.sampling.SamplingConfig`,
        :class:`~lipsdf.training.TrainingConfig` and :class:`~lipsdf.evaluate.EvaluationConfig`.
    model : ``arch``, ``layers``, ``width`` (and ``activation``, ``beta``) overrides.
    resolution : contour grid, vertices along the longest side.
    image_size : side of the 3D picture in pixels.
    device : ``cpu`` or ``cuda`` (default: CUDA when present).
    reference : a shape file to evaluate the field against instead of the input: the true surface of a
        scan, say (default: the input itself).

    Examples
    --------
    >>> options = FitOptions(quick=True, training={"epochs": 3})
    >>> options.merged({"time": "2m", "width": 16}).to_dict()["model"], options.merged({"time": "2m"}).time
    ({'width': 16}, 120.0)
    """

    mode: Optional[str] = None
    kind: Optional[str] = None
    quick: bool = False
    time: Optional[float] = None
    recipe: Optional[str] = None
    seed: Optional[int] = None
    sampling: Mapping[str, Any] = field(default_factory=dict)
    training: Mapping[str, Any] = field(default_factory=dict)
    model: Mapping[str, Any] = field(default_factory=dict)
    evaluation: Mapping[str, Any] = field(default_factory=dict)
    resolution: Optional[int] = None
    image_size: Optional[int] = None
    device: Optional[str] = None
    reference: Optional[str] = None

    def __post_init__(self) -> None:
        training = dict(self.training)
        if "recipe" in training:  # ``--recipe`` is also a training option: one place for it
            object.__setattr__(self, "recipe", training.pop("recipe"))
        for group in GROUPS:
            object.__setattr__(self, group, dict(training if group == "training" else getattr(self, group) or {}))
        if self.time is not None:
            object.__setattr__(self, "time", parse_duration(self.time))

    @classmethod
    def from_flat(cls, flat: Mapping[str, Any]) -> "FitOptions":
        """Options from flat keys, as a manifest row gives them (``epochs=80 width=32 eval_n_pairs=500
        time=90s``): the top-level fields, ``arch``/``layers``/``width``, ``eval_`` plus an evaluation field,
        and the fields of the sampling and training configs."""
        fields = {"sampling": _names(SamplingConfig), "training": _names(TrainingConfig),
                  "evaluation": _names(EvaluationConfig)}
        top: dict[str, Any] = {}
        groups: dict[str, dict[str, Any]] = {group: {} for group in GROUPS}
        for key, value in flat.items():
            if key in SCALAR_KEYS:
                top[key] = value
            elif key in MODEL_KEYS:
                groups["model"][key] = value
            elif key.startswith("eval_") and key[5:] in fields["evaluation"]:
                groups["evaluation"][key[5:]] = value
            elif key in fields["sampling"]:
                groups["sampling"][key] = value
            elif key in fields["training"]:
                groups["training"][key] = value
            else:
                raise LipsdfError(f"unknown per-shape option {key!r}")
        return cls(**top, **groups)

    @classmethod
    def of(cls, options: Optional["FitOptions"], keywords: Mapping[str, Any]) -> "FitOptions":
        """``options`` (or none) with keyword arguments on top: how :func:`~lipsdf.pipeline.single.fit` and
        :func:`~lipsdf.pipeline.many.fit_many` take both."""
        given = cls(**keywords)
        return given if options is None else options.merged(given)

    def merged(self, other: Union["FitOptions", Mapping[str, Any]]) -> "FitOptions":
        """These options with ``other``'s (a FitOptions, or flat keys as :meth:`from_flat` reads them) on top:
        groups merge key by key, other fields are replaced where ``other`` sets them."""
        other = other if isinstance(other, FitOptions) else FitOptions.from_flat(other)
        changes: dict[str, Any] = {}
        for item in dataclasses.fields(self):
            mine, theirs = getattr(self, item.name), getattr(other, item.name)
            if item.name in GROUPS:
                changes[item.name] = {**mine, **theirs}
            elif theirs != item.default:
                changes[item.name] = theirs
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain values (groups as dicts), for fingerprints and logs."""
        return {item.name: dict(getattr(self, item.name)) if item.name in GROUPS else getattr(self, item.name)
                for item in dataclasses.fields(self)}

    def seeded(self, group: str) -> dict[str, Any]:
        """The overrides of ``group`` with the common seed where the group sets none."""
        values = dict(getattr(self, group))
        if self.seed is not None and group != "model":
            values.setdefault("seed", self.seed)
        return values


def _names(cls: type) -> tuple[str, ...]:
    return tuple(item.name for item in dataclasses.fields(cls))
