"""A fitted learner behind the controller's :class:`DemandForecaster` interface.

:class:`LearnedDemandForecaster` holds one fitted forecaster per quantity, the training
history and a view of the realised past of the running day. A forecast at ``start_min`` is
built from ``(history + realised past).until(start_min)`` only, so no task released at or
after ``start_min`` (nor any pick-up, delivery or energy after it) can change it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from agentev.forecasting.demand import DemandForecaster
from agentev.forecasting.features import QUANTITIES, FeatureSpec, feature_rows, training_frame
from agentev.forecasting.history import TaskLog, task_log_from_model

if TYPE_CHECKING:
    from agentev.forecasting.models import Forecaster
    from agentev.model import FactoryModel


class ModelObserver:
    """The realised past of a running model, as a :class:`TaskLog` (a picklable callable)."""

    def __init__(self, model: FactoryModel) -> None:
        self.model = model

    def __call__(self) -> TaskLog:
        """The model's log up to its current time."""
        return task_log_from_model(self.model)


class LearnedDemandForecaster(DemandForecaster):
    """Forecasts tasks, energy and busy vehicles per period with fitted learners.

    Args:
        learners: A fitted forecaster per quantity (keys from ``QUANTITIES``).
        spec: The features the learners were fitted on.
        history: The training history (e.g. the warm-up days, ending at minute 0).
        observed: The realised past after the history: a log, or a callable returning the
            log so far (:class:`ModelObserver`); None when the history is all there is.
        quantile: Upper quantile that :meth:`arrivals` returns (robust planning), or None
            for the mean.
        name: The forecaster's name (as in ``make_forecaster``).
    """

    def __init__(
        self,
        learners: Mapping[str, Forecaster],
        spec: FeatureSpec,
        history: TaskLog,
        observed: TaskLog | Callable[[], TaskLog] | None = None,
        quantile: float | None = None,
        name: str = "learned",
    ) -> None:
        unknown = set(learners) - set(QUANTITIES)
        if unknown:
            raise ValueError(f"quantities {sorted(unknown)}: allowed: {', '.join(QUANTITIES)}")
        if quantile is not None and not 0.5 < quantile < 1.0:
            raise ValueError(f"quantile = {quantile}: allowed: None (the mean) or 0.5 < q < 1")
        self.learners = dict(learners)
        self.spec = spec
        self.history = history
        self.observed = observed
        self.quantile = quantile
        self.name = name

    @classmethod
    def fit(
        cls,
        estimator: Forecaster,
        history: TaskLog,
        spec: FeatureSpec,
        *,
        quantities: Sequence[str] = ("tasks",),
        origin_step_min: float | None = None,
        **kwargs: object,
    ) -> LearnedDemandForecaster:
        """Fit a copy of ``estimator`` for each quantity on ``history``.

        Other keywords are the constructor's.
        """
        from sklearn.base import clone  # scikit-learn only where a learner is fitted

        learners = {}
        for q in quantities:
            x, y, starts = training_frame(history, q, spec, origin_step_min)
            learners[q] = clone(estimator).fit(x, y, target_start_min=starts)
        return cls(learners, spec, history, **kwargs)

    def past(self, cutoff_min: float) -> TaskLog:
        """Everything known at ``cutoff_min``: the history and the realised past before it."""
        log = self.history
        if self.observed is not None and cutoff_min > self.history.end_min:
            later = self.observed() if callable(self.observed) else self.observed
            log = log.then(later)
        return log.until(cutoff_min)

    def forecast(
        self,
        quantity: str,
        start_min: float,
        periods: int,
        period_min: float,
        quantile: float | None = None,
    ) -> np.ndarray:
        """The quantity in each of ``periods`` periods from ``start_min``.

        The mean, or the upper ``quantile``; never negative.

        Raises:
            ValueError: For a quantity without a learner, another period length or more
                periods than the learners were fitted for.
        """
        if quantity not in self.learners:
            raise ValueError(
                f"quantity = {quantity!r}: allowed: {', '.join(self.learners)} (fitted)"
            )
        if abs(period_min - self.spec.period_min) > 1e-9:
            raise ValueError(
                f"period_min = {period_min}: allowed: {self.spec.period_min} (the learners')"
            )
        if not 0 <= periods <= self.spec.horizon_periods:
            raise ValueError(
                f"periods = {periods}: allowed: 0 to {self.spec.horizon_periods} (the learners')"
            )
        if periods == 0:
            return np.zeros(0)
        x = feature_rows(self.past(start_min), quantity, self.spec, np.array([start_min]))
        x = x.iloc[:periods]
        learner = self.learners[quantity]
        y = learner.predict(x) if quantile is None else learner.predict_quantile(x, quantile)
        return np.maximum(np.asarray(y, dtype=float), 0.0)

    def arrivals(self, start_min: float, periods: int, period_min: float) -> np.ndarray:
        """Tasks released in each period: the mean, or the robust quantile if one is set."""
        return self.forecast("tasks", start_min, periods, period_min, self.quantile)

    def energy_kwh(
        self, start_min: float, periods: int, period_min: float, quantile: float | None = None
    ) -> np.ndarray:
        """Energy the fleet consumes in each period (kWh): mean or upper ``quantile``."""
        return self.forecast("energy_kwh", start_min, periods, period_min, quantile)

    def busy_vehicles(
        self, start_min: float, periods: int, period_min: float, quantile: float | None = None
    ) -> np.ndarray:
        """Mean number of vehicles busy with a task in each period: mean or ``quantile``."""
        return self.forecast("busy_vehicles", start_min, periods, period_min, quantile)
