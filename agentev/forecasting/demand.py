"""Task demand forecasters: how many jobs arrive in each coming period.

The controller needs the task demand of each period of its horizon. A forecaster maps a start
time and a number of periods to expected arrivals per period; the machine-learning
forecasters (:mod:`agentev.forecasting.adapter`) plug in behind the same interface.

* :class:`ZeroForecaster`: no demand at all (``none``: the controller plans on the backlog
  alone; for ablation).

* :class:`ArrivalRateForecaster`: the scenario's expected arrival rate (its arrival process,
  not the realised future). For ``flexible`` scenarios the hourly factors have mean 1, so the
  expected rate is the shift pattern.
* :class:`PerfectForecaster`: the real task trace of the run (for ablation and the hindsight plan).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np

from agentev.config import TaskConfig


class DemandForecaster(ABC):
    """Forecasts task arrivals per period."""

    name = "base"

    @abstractmethod
    def arrivals(self, start_min: float, periods: int, period_min: float) -> np.ndarray:
        """Expected task arrivals in each of ``periods`` periods from ``start_min``."""


class ArrivalRateForecaster(DemandForecaster):
    """Expected arrivals from the scenario's daily rate pattern (jobs per hour by shift)."""

    name = "rate"

    def __init__(self, tasks: TaskConfig) -> None:
        minute_of_day = np.arange(1440) / 60.0
        daily = np.zeros(1440)
        for shift in tasks.shifts:
            inside = (minute_of_day >= shift.start_h) & (minute_of_day < shift.end_h)
            daily += np.where(inside, shift.rate_per_h, 0.0)
        self._cumulative = np.concatenate([[0.0], np.cumsum(daily / 60.0)])
        self._per_day = self._cumulative[-1]

    def _count(self, minute: float) -> float:
        """Expected arrivals in [0, minute)."""
        days, rest = divmod(minute, 1440.0)
        i = int(rest)
        frac = rest - i
        within = self._cumulative[i] + frac * (
            self._cumulative[min(i + 1, 1440)] - self._cumulative[i]
        )
        return days * self._per_day + within

    def arrivals(self, start_min: float, periods: int, period_min: float) -> np.ndarray:
        """Expected arrivals per period (the integral of the rate over each period)."""
        edges = [start_min + k * period_min for k in range(periods + 1)]
        counts = [self._count(e) for e in edges]
        return np.diff(counts)


class ZeroForecaster(DemandForecaster):
    """Forecasts no task arrivals (the ``none`` forecaster)."""

    name = "none"

    def arrivals(self, start_min: float, periods: int, period_min: float) -> np.ndarray:
        """Zero arrivals in each period."""
        return np.zeros(periods)


class PerfectForecaster(DemandForecaster):
    """The realised arrivals of the run's task trace."""

    name = "perfect"

    def __init__(self, release_min: Sequence[float]) -> None:
        self._release = np.sort(np.asarray(release_min, dtype=float))

    def arrivals(self, start_min: float, periods: int, period_min: float) -> np.ndarray:
        """Tasks released in each period."""
        edges = start_min + period_min * np.arange(periods + 1)
        return np.diff(np.searchsorted(self._release, edges, side="left")).astype(float)
