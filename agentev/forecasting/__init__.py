"""Forecasts for the twin controller: task demand, fleet energy and busy vehicles per period.

* :mod:`~agentev.forecasting.demand`: the controller's interface (:class:`DemandForecaster`)
  and the forecasters without learning (``none``, ``rate``, ``perfect``).
* :mod:`~agentev.forecasting.history`: training history (simulated warm-up days, the running
  model's past, CSV task logs).
* :mod:`~agentev.forecasting.features`: per-period features and targets.
* :mod:`~agentev.forecasting.models`: scikit-learn-style learners with intervals
  (seasonal naive, random forest, Gaussian process, ensemble); :mod:`~agentev.forecasting.
  lstm` (optional extra ``lstm``).
* :mod:`~agentev.forecasting.adapter`: a fitted learner as a :class:`DemandForecaster`.
* :mod:`~agentev.forecasting.registry`: :func:`make_forecaster` by name.
* :mod:`~agentev.forecasting.evaluation`: MAE, RMSE and interval coverage on held-out days.

The learners are imported on first use (``agentev.forecasting.RandomForestForecaster``), so
importing agentev does not import scikit-learn's models, MAPIE or JAX.
"""

from __future__ import annotations

import importlib
from typing import Any

from agentev.forecasting.adapter import LearnedDemandForecaster, ModelObserver
from agentev.forecasting.demand import (
    ArrivalRateForecaster,
    DemandForecaster,
    PerfectForecaster,
    ZeroForecaster,
)
from agentev.forecasting.features import QUANTITIES, FeatureSpec
from agentev.forecasting.history import (
    TaskLog,
    TaskLogError,
    history_seed,
    load_task_log,
    simulate_history,
    task_log_from_model,
)
from agentev.forecasting.registry import (
    FORECASTER_NAMES,
    FORECASTERS,
    LEARNER_NAMES,
    learner,
    make_forecaster,
)

_LAZY = {
    "Forecaster": "agentev.forecasting.models",
    "SeasonalNaiveForecaster": "agentev.forecasting.models",
    "RandomForestForecaster": "agentev.forecasting.models",
    "GaussianProcessForecaster": "agentev.forecasting.models",
    "EnsembleForecaster": "agentev.forecasting.models",
    "LSTMForecaster": "agentev.forecasting.lstm",
    "evaluate": "agentev.forecasting.evaluation",
    "interval_coverage": "agentev.forecasting.evaluation",
}

__all__ = [
    "FORECASTERS",
    "FORECASTER_NAMES",
    "LEARNER_NAMES",
    "QUANTITIES",
    "ArrivalRateForecaster",
    "DemandForecaster",
    "FeatureSpec",
    "LearnedDemandForecaster",
    "ModelObserver",
    "PerfectForecaster",
    "TaskLog",
    "TaskLogError",
    "ZeroForecaster",
    "history_seed",
    "learner",
    "load_task_log",
    "make_forecaster",
    "simulate_history",
    "task_log_from_model",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'agentev.forecasting' has no attribute {name!r}")
