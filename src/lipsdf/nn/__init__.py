"""Torch modules: 1-Lipschitz layers and networks, baselines."""

from lipsdf.nn.layers import GroupSort, OrthogonalLinear, SLLBlock, UnitNormLinear, bjorck
from lipsdf.nn.models import MLP, SIREN, LipschitzMLP, build_model

__all__ = ["GroupSort", "LipschitzMLP", "MLP", "OrthogonalLinear", "SIREN", "SLLBlock", "UnitNormLinear", "bjorck",
           "build_model"]
