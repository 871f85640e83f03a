"""Per-period features and targets from a task log.

A forecast is made at an *origin* time ``o`` for the periods ``[o + (k - 1) dt, o + k dt)``,
``k = 1 .. H`` (the lead). One row per (origin, lead); the target is the quantity in that
period, and every feature comes from the time before ``o`` or from the calendar:

==================  ============================================================================
``tod_sin/cos``     time of day of the period's start, on the unit circle (period 1 day)
``day_of_week``     weekday of the period (only with ``FeatureSpec.day_of_week``)
``shift``           index of the shift the period starts in (``FeatureSpec.shift_starts_h``)
``lead``            k, periods ahead of the origin
``recent_j``        the quantity in the j-th period before the origin, ``[o - j dt, o - (j-1) dt)``
``lag_day``         the quantity in the same period one day earlier (needs ``H dt <= 1 day``)
==================  ============================================================================

Quantities (:data:`QUANTITIES`): ``tasks`` (tasks released in the period, count),
``energy_kwh`` (energy the fleet consumed in the period, kWh) and ``busy_vehicles`` (mean
number of tasks in service, pick-up to delivery, over the period: vehicles busy).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from agentev.config import TaskConfig
from agentev.forecasting.history import TaskLog

QUANTITIES = ("tasks", "energy_kwh", "busy_vehicles")
UNITS = {"tasks": "tasks per period", "energy_kwh": "kWh per period", "busy_vehicles": "vehicles"}
DAY_MIN = 1440.0


@dataclass(frozen=True)
class FeatureSpec:
    """What a forecaster sees.

    Attributes:
        period_min: Length of a period (minutes); the controller uses 15.
        horizon_periods: Periods ahead that are forecast (the controller's 4 h: 16).
        recent_periods: Periods before the origin given as ``recent_1 .. recent_R``.
        shift_starts_h: Start hours of the shifts of the day, sorted.
        day_of_week: Whether the weekday is a feature (useful with weeks of history only:
            with a week or less, each weekday is one day's noise).
    """

    period_min: float = 15.0
    horizon_periods: int = 16
    recent_periods: int = 4
    shift_starts_h: tuple[float, ...] = (6.0, 14.0, 22.0)
    day_of_week: bool = False

    def __post_init__(self) -> None:
        if self.period_min <= 0:
            raise ValueError(f"period_min = {self.period_min}: allowed: > 0 minutes")
        if not 1 <= self.horizon_periods * self.period_min <= DAY_MIN:
            raise ValueError(
                f"horizon_periods x period_min = {self.horizon_periods * self.period_min} min: "
                "allowed: 1 to 1440 (the lag of one day must lie before the origin)"
            )
        if self.recent_periods < 1:
            raise ValueError(f"recent_periods = {self.recent_periods}: allowed: 1 or more")
        if not self.shift_starts_h:
            raise ValueError("shift_starts_h is empty: allowed: one start hour or more")

    @property
    def columns(self) -> list[str]:
        """Feature columns, in order."""
        calendar = ["tod_sin", "tod_cos"] + (["day_of_week"] if self.day_of_week else [])
        recent = [f"recent_{j}" for j in range(1, self.recent_periods + 1)]
        return calendar + ["shift", "lead"] + recent + ["lag_day"]

    @property
    def lookback_min(self) -> float:
        """History needed before an origin (minutes)."""
        return max(DAY_MIN, self.recent_periods * self.period_min)

    @classmethod
    def for_tasks(cls, tasks: TaskConfig, **kwargs: object) -> FeatureSpec:
        """A spec whose shifts are the scenario's."""
        starts = tuple(sorted({float(s.start_h) for s in tasks.shifts})) or (0.0,)
        return cls(shift_starts_h=starts, **kwargs)


def interval_cumulative(
    starts: np.ndarray, ends: np.ndarray, weights: np.ndarray, t: np.ndarray
) -> np.ndarray:
    """Weighted time in intervals before each ``t``: ``sum_i w_i clip(t - s_i, 0, e_i - s_i)``."""
    t = np.asarray(t, dtype=float)
    weights = np.broadcast_to(np.asarray(weights, dtype=float), np.shape(starts))

    def ramp(points: np.ndarray) -> np.ndarray:
        order = np.argsort(points)
        p, w = points[order], weights[order]
        cum_w = np.concatenate([[0.0], np.cumsum(w)])
        cum_wp = np.concatenate([[0.0], np.cumsum(w * p)])
        k = np.searchsorted(p, t, side="left")
        return t * cum_w[k] - cum_wp[k]

    return ramp(np.asarray(starts, dtype=float)) - ramp(np.asarray(ends, dtype=float))


def cumulative(log: TaskLog, quantity: str) -> Callable[[np.ndarray], np.ndarray]:
    """The quantity accumulated from the log's start up to each time ``t``.

    Tasks released, kWh consumed, or vehicle-minutes busy.
    """
    if quantity == "tasks":
        release = np.sort(log.release_min)
        return lambda t: np.searchsorted(release, t, side="left").astype(float)
    if quantity == "busy_vehicles":
        picked = ~np.isnan(log.pickup_min)
        starts = log.pickup_min[picked]
        ends = np.where(np.isnan(log.delivery_min[picked]), log.end_min, log.delivery_min[picked])
        ones = np.ones(len(starts))
        return lambda t: interval_cumulative(starts, ends, ones, t)
    if quantity == "energy_kwh":
        if log.energy_kwh_per_min is None:
            raise ValueError(
                "quantity = 'energy_kwh': the task log has no energy (CSV column energy_kwh, "
                "or a log recorded by the model); allowed without it: tasks, busy_vehicles"
            )
        cum = np.concatenate([[0.0], np.cumsum(log.energy_kwh_per_min)])
        edges = log.start_min + np.arange(len(cum), dtype=float)
        return lambda t: np.interp(t, edges, cum)
    raise ValueError(f"quantity = {quantity!r}: allowed: {', '.join(QUANTITIES)}")


def period_values(log: TaskLog, quantity: str, starts: np.ndarray, period_min: float) -> np.ndarray:
    """The quantity in each period ``[s, s + period_min)``: a count, kWh, or mean vehicles."""
    c = cumulative(log, quantity)
    starts = np.asarray(starts, dtype=float)
    total = c(starts + period_min) - c(starts)
    return total / period_min if quantity == "busy_vehicles" else total


def feature_rows(
    log: TaskLog, quantity: str, spec: FeatureSpec, origins: np.ndarray
) -> pd.DataFrame:
    """Feature rows for forecasts made at ``origins`` (one row per origin and lead).

    Only the log before each origin is read (the lags), so a log cut at the origin
    (:meth:`TaskLog.until`) gives the same rows.

    Raises:
        ValueError: If the log does not reach back ``spec.lookback_min`` before an origin.
    """
    origins = np.asarray(origins, dtype=float)
    dt, h = spec.period_min, spec.horizon_periods
    if len(origins) and origins.min() - spec.lookback_min < log.start_min - 1e-9:
        raise ValueError(
            f"origin {origins.min():g} min: the task log starts at {log.start_min:g} min; "
            f"allowed: origins at least {spec.lookback_min:g} min after its start"
        )
    o = np.repeat(origins, h)
    lead = np.tile(np.arange(1, h + 1), len(origins))
    start = o + (lead - 1) * dt
    c = cumulative(log, quantity)
    scale = dt if quantity == "busy_vehicles" else 1.0

    def value(a: np.ndarray) -> np.ndarray:
        return (c(a + dt) - c(a)) / scale

    tod = np.mod(start, DAY_MIN) / DAY_MIN * 2.0 * math.pi
    hour = np.mod(start, DAY_MIN) / 60.0
    shifts = np.asarray(spec.shift_starts_h)
    cols: dict[str, np.ndarray] = {"tod_sin": np.sin(tod), "tod_cos": np.cos(tod)}
    if spec.day_of_week:
        cols["day_of_week"] = np.mod(np.floor(start / DAY_MIN) + log.weekday_of_day0, 7)
    cols["shift"] = np.mod(np.searchsorted(shifts, hour, side="right") - 1, len(shifts))
    cols["lead"] = lead.astype(float)
    for j in range(1, spec.recent_periods + 1):
        cols[f"recent_{j}"] = value(o - j * dt)
    cols["lag_day"] = value(start - DAY_MIN)
    return pd.DataFrame({k: np.asarray(v, dtype=float) for k, v in cols.items()})


def training_origins(
    log: TaskLog, spec: FeatureSpec, origin_step_min: float | None = None
) -> np.ndarray:
    """Origins whose lags and targets all lie inside the log.

    On a grid of ``origin_step_min`` (default: one period) aligned with midnight.
    """
    step = spec.period_min if origin_step_min is None else origin_step_min
    first = math.ceil((log.start_min + spec.lookback_min - 1e-9) / step) * step
    last = log.end_min - spec.horizon_periods * spec.period_min
    return np.arange(first, last + 1e-9, step)


def training_frame(
    log: TaskLog, quantity: str, spec: FeatureSpec, origin_step_min: float | None = None
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Features, targets and target period starts (minutes) of every training origin.

    In time order (origin, then lead).

    A period is the target of up to ``horizon_periods`` rows (one per lead); its start time
    tells them apart (``fit(..., target_start_min=...)``).

    Raises:
        ValueError: If the log is too short for a single origin.
    """
    origins = training_origins(log, spec, origin_step_min)
    if not len(origins):
        need = spec.lookback_min + spec.horizon_periods * spec.period_min
        raise ValueError(
            f"task log of {log.end_min - log.start_min:g} min: allowed: at least {need:g} min "
            "(one day of lags and one horizon)"
        )
    x = feature_rows(log, quantity, spec, origins)
    starts = np.repeat(origins, spec.horizon_periods) + (x["lead"].to_numpy() - 1) * spec.period_min
    y = period_values(log, quantity, starts, spec.period_min)
    return x, y, starts
