"""The whole pipeline in one call: shape -> dataset -> field -> contour -> pictures -> metrics.

- :mod:`~lipsdf.pipeline.options`: :class:`FitOptions`, what a user asks of a fit;
- :mod:`~lipsdf.pipeline.recipes`: what a fit does by default, as named recipes with time budgets;
- :mod:`~lipsdf.pipeline.budget`: the epochs a budget buys on this machine;
- :mod:`~lipsdf.pipeline.single`: :func:`plan_fit` and :func:`fit`, one shape (staging, resume, GPU warm-up);
- :mod:`~lipsdf.pipeline.many`: :func:`fit_many`, a collection on a local pool or on Ray.
"""

from lipsdf.pipeline.budget import Budget
from lipsdf.pipeline.single import STAGING, FitPlan, FitResult, fit, plan_fit
from lipsdf.pipeline.many import ENGINES, fit_many
from lipsdf.pipeline.options import FitOptions, parse_duration
from lipsdf.pipeline.recipes import Recipe, recipe_for

__all__ = ["Budget", "ENGINES", "FitOptions", "FitPlan", "FitResult", "Recipe", "STAGING", "fit", "fit_many",
           "parse_duration", "plan_fit", "recipe_for"]
