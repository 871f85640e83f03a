"""Forecasters by name: :func:`make_forecaster` and :func:`learner`.

Names (:data:`FORECASTER_NAMES`):

* ``none``: no demand (:class:`ZeroForecaster`); ``rate``: the scenario's expected rate;
  ``perfect``: the run's real future (ablation only);
* learned (:data:`LEARNER_NAMES`): ``naive`` (same period yesterday), ``random_forest``,
  ``gaussian_process``, ``ensemble`` (forest + GP), ``lstm`` (needs the ``lstm`` extra).

The learners' modules are imported only when one is asked for, so ``import agentev`` does not
import scikit-learn's models, MAPIE or JAX.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from agentev.config import ScenarioConfig
from agentev.forecasting.adapter import LearnedDemandForecaster, ModelObserver
from agentev.forecasting.demand import (
    ArrivalRateForecaster,
    DemandForecaster,
    PerfectForecaster,
    ZeroForecaster,
)
from agentev.forecasting.features import FeatureSpec
from agentev.forecasting.history import HISTORY_STREAM_KEY, TaskLog, simulate_history

if TYPE_CHECKING:
    from agentev.forecasting.models import Forecaster
    from agentev.model import FactoryModel

#: name -> (module, class) of each learned forecaster.
LEARNERS: dict[str, tuple[str, str]] = {
    "naive": ("agentev.forecasting.models", "SeasonalNaiveForecaster"),
    "random_forest": ("agentev.forecasting.models", "RandomForestForecaster"),
    "gaussian_process": ("agentev.forecasting.models", "GaussianProcessForecaster"),
    "ensemble": ("agentev.forecasting.models", "EnsembleForecaster"),
    "lstm": ("agentev.forecasting.lstm", "LSTMForecaster"),
}
LEARNER_NAMES = tuple(LEARNERS)
FORECASTER_NAMES = ("none", "rate", "perfect", *LEARNER_NAMES)
#: The old name of :data:`FORECASTER_NAMES` (every name the controller accepts).
FORECASTERS = FORECASTER_NAMES

#: Days of history from which the weekday becomes a feature (with fewer, each weekday is
#: one or two days' noise).
DAY_OF_WEEK_MIN_DAYS = 14


def learner(name: str, **params: Any) -> Forecaster:
    """A new (unfitted) learned forecaster by name, with scikit-learn parameters.

    Raises:
        ValueError: For an unknown name.
        ImportError: For ``lstm`` without the extra, naming the pip command.
    """
    if name not in LEARNERS:
        raise ValueError(f"learned forecaster {name!r}: allowed: {', '.join(LEARNER_NAMES)}")
    module, cls = LEARNERS[name]
    estimator = getattr(importlib.import_module(module), cls)
    if "random_state" not in estimator().get_params():
        params.pop("random_state", None)
    return estimator(**params)


def forecast_rng(seed: int) -> np.random.Generator:
    """The learners' stream of a run with ``seed``.

    Beside the warm-up history's; the model's own streams are untouched, so every forecaster
    sees the same run.
    """
    stream = np.random.SeedSequence(int(seed), spawn_key=(HISTORY_STREAM_KEY, 1))
    return np.random.default_rng(stream)


def default_spec(config: ScenarioConfig, history: TaskLog) -> FeatureSpec:
    """The controller's periods and horizon and the scenario's shifts.

    The weekday is a feature when the history covers :data:`DAY_OF_WEEK_MIN_DAYS`.
    """
    c = config.controller
    return FeatureSpec.for_tasks(
        config.tasks,
        period_min=c.period_min,
        horizon_periods=math.ceil(c.prediction_horizon_h * 60.0 / c.period_min - 1e-9),
        day_of_week=(history.end_min - history.start_min) >= DAY_OF_WEEK_MIN_DAYS * 1440.0,
    )


def make_forecaster(
    name: str,
    model: FactoryModel | None = None,
    *,
    config: ScenarioConfig | None = None,
    history: TaskLog | None = None,
    observed: TaskLog | None = None,
    warmup_days: int = 7,
    spec: FeatureSpec | None = None,
    quantile: float | None = None,
    quantities: Sequence[str] | None = None,
    rng: np.random.Generator | None = None,
    **params: Any,
) -> DemandForecaster:
    """Build a forecaster by name.

    Args:
        name: One of :data:`FORECASTER_NAMES`.
        model: The running model: its scenario, seed, task trace (``perfect``) and realised
            past (the learners' inputs while it runs).
        config: The scenario, when there is no model.
        history: Training history; default: ``warmup_days`` simulated before the measured
            day (:func:`simulate_history`, from the run's seed). With a model, a history
            that does not end at minute 0 (a CSV log) is moved there by whole days
            (:meth:`TaskLog.as_warm_up`).
        observed: The realised past after the history, when there is no model.
        warmup_days: Days of simulated history.
        spec: Features; default: :func:`default_spec`.
        quantile: Upper quantile for robust planning (``arrivals`` returns it), or None.
        quantities: Quantities to learn; default: tasks, busy vehicles, and energy when the
            history has it.
        rng: Source of the learners' seeds; default: :func:`forecast_rng` of the run's seed.
        **params: Parameters of the learner (e.g. ``n_estimators=200``).

    Raises:
        ValueError: For an unknown name or missing inputs, naming what is needed.
    """
    if name == "none":
        return ZeroForecaster()
    cfg = config if config is not None else (model.config if model is not None else None)
    if name == "rate":
        if cfg is None:
            raise ValueError("forecaster 'rate' needs a model or config= (the scenario's rates)")
        return ArrivalRateForecaster(cfg.tasks)
    if name == "perfect":
        if model is None:
            raise ValueError("forecaster 'perfect' needs the model (its real task trace)")
        return PerfectForecaster([t.release_min for t in model.task_trace])
    if name not in LEARNERS:
        raise ValueError(f"forecaster {name!r}: allowed: {', '.join(FORECASTER_NAMES)}")
    if history is None:
        if cfg is None or model is None:
            raise ValueError(
                f"forecaster {name!r} needs history= (a TaskLog) or a model to simulate "
                "warm-up days from"
            )
        history = simulate_history(cfg, warmup_days, seed=model.seed)
    elif model is not None and observed is None and history.end_min != 0.0:
        # a plant's log (its own minutes or dates) goes before the run's minute 0
        history = history.as_warm_up()
    if spec is None:
        if cfg is None:
            raise ValueError(f"forecaster {name!r} needs spec= or a scenario (model or config=)")
        spec = default_spec(cfg, history)
    if rng is None:
        rng = forecast_rng(model.seed if model is not None else 0)
    if quantities is None:
        quantities = ("tasks", "busy_vehicles") + (
            ("energy_kwh",) if history.energy_kwh_per_min is not None else ()
        )
    estimator = learner(name, random_state=int(rng.integers(2**31)), **params)
    if observed is None and model is not None:
        observed = ModelObserver(model)
    return LearnedDemandForecaster.fit(
        estimator,
        history,
        spec,
        quantities=quantities,
        observed=observed,
        quantile=quantile,
        name=name,
    )
