"""Training history: task logs recorded by the model itself, or read from a plant's CSV file.

A :class:`TaskLog` is what a forecaster may learn from: the release, pick-up and delivery
times of tasks (minutes) over a span ``[start_min, end_min)``, and, where known, the fleet's
energy use in each minute of it. Three sources:

* :func:`simulate_history`: warm-up days of the scenario simulated *before* the measured day
  (times ``-days * 1440 .. 0``), from their own random stream (:func:`history_seed`), never
  from the measured day's trace.
* :func:`task_log_from_model`: the realised past of a running model, up to its current time.
* :func:`load_task_log`: a CSV task log in the format of ``docs/forecasting.md`` (agentev's
  own ``tasks.csv`` loads as it is).

:meth:`TaskLog.until` cuts a log at a time: what was known then. Forecasts are built only
from such cuts, so they never see the future.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from agentev.config import ScenarioConfig

if TYPE_CHECKING:
    from agentev.model import FactoryModel

#: Spawn key of the warm-up history's stream under the run's seed. The model spawns its
#: streams with keys 0..3 (arrivals, initial states of charge, failures, tie-breaks), so
#: this one is independent of all of them.
HISTORY_STREAM_KEY = 1000

#: Time columns of a CSV task log: minutes (``*_min``) or ISO 8601 timestamps (``*_time``).
TIME_FIELDS = ("release", "pickup", "delivery")
DAY_MIN = 1440.0


class TaskLogError(ValueError):
    """A task log that cannot be used: names the line, column, value and what is allowed."""


@dataclass(frozen=True)
class TaskLog:
    """Tasks over a span of time, and the fleet's energy use where known.

    Attributes:
        release_min: Release times, sorted (minutes).
        pickup_min: Pick-up times, NaN while not picked up (minutes).
        delivery_min: Delivery times, NaN while not delivered (minutes).
        start_min: Start of the span the log covers (minutes).
        end_min: End of the span (minutes, exclusive); a task picked up and not delivered is
            busy until then.
        energy_kwh_per_min: Fleet energy consumed in each minute ``[start_min + i,
            start_min + i + 1)`` (kWh), or None when the log has no energy.
        weekday_of_day0: Weekday of the day that starts at minute 0 (Monday = 0).
    """

    release_min: np.ndarray
    pickup_min: np.ndarray
    delivery_min: np.ndarray
    start_min: float
    end_min: float
    energy_kwh_per_min: np.ndarray | None = None
    weekday_of_day0: int = 0

    @property
    def num_tasks(self) -> int:
        """Tasks in the log."""
        return len(self.release_min)

    def until(self, cutoff_min: float) -> TaskLog:
        """The log as it was known at ``cutoff_min``: nothing at or after it.

        Tasks released at or after the cut are dropped; pick-ups and deliveries at or after
        it become unknown (NaN); the energy keeps the whole minutes before it.
        """
        cutoff = min(float(cutoff_min), self.end_min)
        keep = self.release_min < cutoff
        pickup = np.where(self.pickup_min < cutoff, self.pickup_min, np.nan)[keep]
        delivery = np.where(self.delivery_min < cutoff, self.delivery_min, np.nan)[keep]
        energy = self.energy_kwh_per_min
        if energy is not None:
            energy = energy[: max(0, int(math.floor(cutoff - self.start_min)))]
        return replace(
            self,
            release_min=self.release_min[keep],
            pickup_min=pickup,
            delivery_min=delivery,
            end_min=max(cutoff, self.start_min),
            energy_kwh_per_min=energy,
        )

    def shifted(self, offset_min: float) -> TaskLog:
        """The same log with every time moved by ``offset_min`` (days keep the time of day)."""
        return replace(
            self,
            release_min=self.release_min + offset_min,
            pickup_min=self.pickup_min + offset_min,
            delivery_min=self.delivery_min + offset_min,
            start_min=self.start_min + offset_min,
            end_min=self.end_min + offset_min,
        )

    def as_warm_up(self) -> TaskLog:
        """The log moved by whole days so that it ends at minute 0, where a run starts.

        Whole days keep the time of day (and the weekday: ``weekday_of_day0`` follows). A log
        that ends inside a day is extended to midnight with no tasks and, if it has energy,
        zero energy in the added minutes (export whole days to avoid it).
        """
        days = math.ceil(self.end_min / DAY_MIN - 1e-9)
        moved = self.shifted(-DAY_MIN * days)
        energy = moved.energy_kwh_per_min
        if energy is not None:
            pad = max(0, int(round(-moved.start_min)) - len(energy))
            energy = np.concatenate([energy, np.zeros(pad)])
        return replace(
            moved,
            end_min=0.0,
            energy_kwh_per_min=energy,
            weekday_of_day0=(self.weekday_of_day0 + days) % 7,
        )

    def then(self, later: TaskLog) -> TaskLog:
        """This log followed by ``later``, which must start where this one ends.

        Raises:
            TaskLogError: If the spans do not meet.
        """
        if not math.isclose(later.start_min, self.end_min):
            raise TaskLogError(
                f"cannot join task logs: the later one starts at {later.start_min} min, "
                f"allowed: where the earlier ends ({self.end_min} min)"
            )
        energy = None
        if self.energy_kwh_per_min is not None and later.energy_kwh_per_min is not None:
            energy = np.concatenate([self.energy_kwh_per_min, later.energy_kwh_per_min])
        return TaskLog(
            release_min=np.concatenate([self.release_min, later.release_min]),
            pickup_min=np.concatenate([self.pickup_min, later.pickup_min]),
            delivery_min=np.concatenate([self.delivery_min, later.delivery_min]),
            start_min=self.start_min,
            end_min=later.end_min,
            energy_kwh_per_min=energy,
            weekday_of_day0=self.weekday_of_day0,
        )


# ---------------------------------------------------------------------- the model's own
def history_seed(seed: int) -> int:
    """Seed of the warm-up history of a run with ``seed``.

    Its own stream, independent of every stream of the measured day.
    """
    ss = np.random.SeedSequence(int(seed), spawn_key=(HISTORY_STREAM_KEY,))
    return int(ss.generate_state(1)[0])


def task_log_from_model(model: FactoryModel) -> TaskLog:
    """The realised past of ``model`` up to its current time.

    Released tasks, their pick-ups and deliveries so far, and the fleet's recorded energy use
    per minute.
    """
    now = float(model.time)
    released = [t for t in model.task_trace if t.release_min < now]

    def times(attr: str) -> np.ndarray:
        return np.array(
            [np.nan if getattr(t, attr) is None else getattr(t, attr) for t in released],
            dtype=float,
        )

    minutes = int(math.floor(now))
    energy = np.zeros(minutes)
    # a recorder row at time t closes the minute [t - 1, t); column 11 is consumed energy
    for row in model.recorder.rows:
        t = int(row[0])
        if 1 <= t <= minutes:
            energy[t - 1] += row[11]
    return TaskLog(
        release_min=times("release_min"),
        pickup_min=times("pickup_min"),
        delivery_min=times("delivery_min"),
        start_min=0.0,
        end_min=now,
        energy_kwh_per_min=energy,
    )


def simulate_history(
    config: ScenarioConfig, days: int, seed: int, *, strategy: str = "fcfs"
) -> TaskLog:
    """Simulate ``days`` warm-up days of the scenario before the measured day.

    The warm-up run is the scenario with ``strategy`` over ``days * 24`` hours, seeded with
    :func:`history_seed` of ``seed``; its times are shifted so that it ends at minute 0,
    where the measured day starts.

    Args:
        config: The scenario.
        days: Warm-up days (at least 2: the first day only provides lags).
        seed: The measured run's seed.
        strategy: Charging strategy of the warm-up run (the fleet's energy use depends on it).

    Returns:
        The warm-up log over ``[-days * 1440, 0)``.
    """
    from agentev.model import FactoryModel  # the model imports this package

    if days < 2:
        raise TaskLogError(f"warm-up days = {days}: allowed: 2 or more")
    model = FactoryModel(config, strategy=strategy, duration_h=24.0 * days, rng=history_seed(seed))
    model.run()
    return task_log_from_model(model).shifted(-1440.0 * days)


# ---------------------------------------------------------------------- CSV task logs
def _spread_energy(
    pickup: np.ndarray, delivery: np.ndarray, energy: np.ndarray, start: int, minutes: int
) -> np.ndarray:
    """Each task's energy spread evenly over its service ``[pickup, delivery)``, per minute."""
    from agentev.forecasting.features import interval_cumulative

    grid = start + np.arange(minutes + 1, dtype=float)
    rate = energy / np.maximum(delivery - pickup, 1e-9)
    return np.diff(interval_cumulative(pickup, delivery, rate, grid))


def _parse_minutes(col: pd.Series, name: str, src: str) -> np.ndarray:
    out = np.full(len(col), np.nan)
    for i, raw in enumerate(col):
        text = raw.strip()
        if not text:
            continue
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise TaskLogError(
                f"{src} line {i + 2}: {name} = {raw!r}: allowed: a number of minutes, or empty"
            )
        out[i] = value
    return out


def _parse_timestamps(col: pd.Series, name: str, src: str, timezone: str | None) -> pd.Series:
    values = []
    for i, raw in enumerate(col):
        text = raw.strip()
        if not text:
            values.append(pd.NaT)
            continue
        try:
            ts = pd.Timestamp(text)
        except (ValueError, TypeError):
            ts = pd.NaT
        if ts is pd.NaT:
            raise TaskLogError(
                f"{src} line {i + 2}: {name} = {raw!r}: allowed: an ISO 8601 timestamp such "
                "as 2026-03-02T06:15:00, or empty"
            )
        if ts.tzinfo is not None:
            if timezone is None:
                raise TaskLogError(
                    f"{src} line {i + 2}: {name} = {raw!r} has a UTC offset: pass timezone= "
                    "(the plant's, e.g. 'Europe/Berlin') so the time of day is local; "
                    "allowed without it: timestamps without offset"
                )
            ts = ts.tz_convert(timezone).tz_localize(None)
        values.append(ts)
    return pd.Series(values, dtype="datetime64[ns]")


def load_task_log(
    path: str | Path,
    *,
    timezone: str | None = None,
    start_min: float | None = None,
    end_min: float | None = None,
    weekday_of_day0: int = 0,
) -> TaskLog:
    """Read a CSV task log (format: ``docs/forecasting.md``).

    Times are either minutes (columns ``release_min``, ``pickup_min``, ``delivery_min``) or
    ISO 8601 timestamps (``release_time``, ``pickup_time``, ``delivery_time``), one kind per
    file. ``release`` is required, the others optional; empty fields mean "not (yet)". An
    optional ``energy_kwh`` column gives each delivered task's energy, spread evenly over its
    pick-up to delivery. Other columns are ignored.

    Args:
        path: The CSV file.
        timezone: The plant's time zone, needed only for timestamps with a UTC offset.
        start_min: Start of the span the log covers (minutes); default: midnight before
            the first release.
        end_min: End of the span (minutes); default: just after the last time in the log.
        weekday_of_day0: Weekday of minute 0 for logs in minutes (Monday = 0); timestamps
            give it themselves (minute 0 is midnight of the first release's day).

    Raises:
        TaskLogError: Naming the line, the column, the value and what is allowed.
    """
    src = str(path)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError as err:
        raise TaskLogError(f"{src}: no such file") from err
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise TaskLogError(f"{src}: not a CSV file with a header line ({err})") from err
    frame.columns = [c.strip() for c in frame.columns]
    kinds = {
        kind
        for f in TIME_FIELDS
        for kind, col in (("min", f"{f}_min"), ("time", f"{f}_time"))
        if col in frame.columns
    }
    if not kinds or ("release_min" not in frame.columns and "release_time" not in frame.columns):
        raise TaskLogError(
            f"{src}: column release_min or release_time missing (columns: "
            f"{', '.join(frame.columns)}); allowed: release_min (minutes) or release_time "
            "(ISO 8601), optional pickup_*, delivery_*, energy_kwh"
        )
    if len(kinds) > 1:
        raise TaskLogError(
            f"{src}: both *_min and *_time columns: allowed: one kind of time per file"
        )
    kind = kinds.pop()
    weekday = weekday_of_day0
    parsed: dict[str, np.ndarray] = {}
    if kind == "min":
        for f in TIME_FIELDS:
            col = f"{f}_min"
            parsed[f] = (
                _parse_minutes(frame[col], col, src)
                if col in frame.columns
                else np.full(len(frame), np.nan)
            )
    else:
        stamps = {
            f: _parse_timestamps(frame[f"{f}_time"], f"{f}_time", src, timezone)
            for f in TIME_FIELDS
            if f"{f}_time" in frame.columns
        }
        day0 = stamps["release"].min().normalize() if len(frame) else pd.Timestamp(0)
        weekday = int(day0.weekday())
        for f in TIME_FIELDS:
            parsed[f] = (
                ((stamps[f] - day0) / pd.Timedelta(minutes=1)).to_numpy(dtype=float)
                if f in stamps
                else np.full(len(frame), np.nan)
            )
    release, pickup, delivery = parsed["release"], parsed["pickup"], parsed["delivery"]
    rcol = f"release_{kind}"
    for i in np.flatnonzero(np.isnan(release)):
        raise TaskLogError(f"{src} line {i + 2}: {rcol} is empty: allowed: a release time")
    for i in np.flatnonzero(pickup < release):
        raise TaskLogError(
            f"{src} line {i + 2}: pickup_{kind} ({pickup[i]:g} min) is before the release "
            f"({release[i]:g} min): allowed: at or after the release"
        )
    for i in np.flatnonzero(~np.isnan(delivery) & ~(delivery >= pickup)):
        raise TaskLogError(
            f"{src} line {i + 2}: delivery_{kind} ({delivery[i]:g} min) needs a pick-up at or "
            "before it: allowed: empty, or at or after pickup"
        )
    order = np.argsort(release, kind="stable")
    known = [a[~np.isnan(a)] for a in (release, pickup, delivery)]
    last = max((float(a.max()) for a in known if len(a)), default=0.0)
    start = math.floor(release.min() / 1440.0) * 1440.0 if start_min is None else start_min
    end = math.floor(last) + 1.0 if end_min is None else end_min
    if len(release) and release.min() < start:
        raise TaskLogError(f"{src}: start_min = {start}: allowed: at or before the first release")
    if end <= start:
        raise TaskLogError(f"{src}: end_min = {end}: allowed: after start_min = {start}")
    energy = None
    if "energy_kwh" in frame.columns:
        per_task = _parse_minutes(frame["energy_kwh"], "energy_kwh", src)
        for i in np.flatnonzero(per_task < 0):
            raise TaskLogError(
                f"{src} line {i + 2}: energy_kwh = {per_task[i]:g}: allowed: 0 or more (kWh)"
            )
        has = ~np.isnan(per_task)
        for i in np.flatnonzero(has & np.isnan(delivery)):
            raise TaskLogError(
                f"{src} line {i + 2}: energy_kwh of a task without pickup and delivery times: "
                "allowed: energy only for delivered tasks"
            )
        if not math.isclose(start, round(start)):
            raise TaskLogError(f"{src}: start_min = {start}: allowed: whole minutes with energy")
        energy = _spread_energy(
            pickup[has], delivery[has], per_task[has], int(round(start)), int(end - start)
        )
    return TaskLog(
        release_min=release[order],
        pickup_min=pickup[order],
        delivery_min=delivery[order],
        start_min=float(start),
        end_min=float(end),
        energy_kwh_per_min=energy,
        weekday_of_day0=weekday,
    )
