"""Bayesian tools: approximate Bayesian computation (:mod:`ml4ms.bayes.abc`:
``rejection``, ``smc``, ``regression_adjust``) and Bayesian optimisation
(:mod:`ml4ms.bayes.bo`: ``minimize``). Priors and distances are plain objects."""

from . import abc, bo
from .distances import Euclidean, Mahalanobis
from .priors import Beta, JointPrior, LogNormal, LogUniform, Normal, Uniform

__all__ = ["Beta", "Euclidean", "JointPrior", "LogNormal", "LogUniform", "Mahalanobis", "Normal",
           "Uniform", "abc", "bo"]
