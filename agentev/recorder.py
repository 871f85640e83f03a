"""The run log: one row per vehicle per minute, one row per minute for the site, and sessions.

The recorder closes each minute ``[t - 1, t)`` at the model step at time ``t``: it integrates
every vehicle's battery up to ``t`` and logs the minute's energies. ``timeseries.csv`` also has
one row per vehicle at ``time_min = 0`` with the initial state (energies 0), so that the change
of state of charge in the first minute can be checked from the file alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from agentev.model import FactoryModel

TIMESERIES_COLUMNS = [
    "time_min",
    "vehicle_id",
    "state",
    "soc",
    "x",
    "y",
    "charger_id",
    "port_id",
    "power_kw",
    "grid_energy_kwh",
    "charged_energy_kwh",
    "consumed_energy_kwh",
    "capacity_kwh",
    "task_id",
]
GRID_COLUMNS = ["time_min", "price_per_kwh", "base_load_kw", "site_power_kw"]
TASK_COLUMNS = [
    "task_id",
    "release_min",
    "due_min",
    "pickup_station",
    "dropoff_station",
    "vehicle_id",
    "pickup_min",
    "delivery_min",
]
SESSION_COLUMNS = [
    "vehicle_id",
    "charger_id",
    "port_id",
    "need_min",
    "plug_in_min",
    "plug_out_min",
    "drive_min",
    "grid_energy_kwh",
    "charged_energy_kwh",
    "end_reason",
]
CHARGER_EVENT_COLUMNS = ["time_min", "charger_id", "event"]


class Recorder:
    """Collects the run log in memory; :mod:`agentev.outputs` writes it."""

    def __init__(self, model: FactoryModel) -> None:
        self.model = model
        self.rows: list[tuple] = []
        self.grid_rows: list[tuple] = []
        self.sessions: list[tuple] = []
        self.charger_events: list[tuple] = []
        for v in model.vehicles:
            x, y = v.position
            self.rows.append(
                (0.0, v.unique_id, v.state.value, v.soc, x, y, None, None)
                + (0.0, 0.0, 0.0, 0.0, v.capacity_kwh, None)
            )

    def close_step(self, t: int) -> float:
        """Close the minute ending at ``t``; returns the fleet's grid energy in it (kWh)."""
        rows = self.rows
        fleet_grid = 0.0
        for v in self.model.vehicles:
            v.advance(t)
            if v.moving:
                x, y = xy = v.position
                if v.cell.coordinate != xy:
                    v.move_to(self.model.layout.cell(xy))
            else:
                x, y = v._pos
            grid = v.step_grid_kwh
            fleet_grid += grid
            port = v.step_port
            task = v.task
            rows.append(
                (
                    float(t),
                    v.unique_id,
                    v.state,  # a StrEnum: written as its value
                    v.battery.energy_kwh / v.battery.capacity_kwh,
                    x,
                    y,
                    None if port is None else port[0],
                    None if port is None else port[1],
                    grid * 60.0,
                    grid,
                    v.step_charged_kwh,
                    v.step_consumed_kwh,
                    v.battery.capacity_kwh,
                    None if task is None else task.task_id,
                )
            )
            v.step_grid_kwh = v.step_charged_kwh = v.step_consumed_kwh = 0.0
            if v.charger is None:
                v.step_port = None
        tariff = self.model.tariff
        base = tariff.base_load_kw(t)
        self.grid_rows.append((float(t), tariff.price(t), base, base + fleet_grid * 60.0))
        return fleet_grid

    def session(self, *row) -> None:
        """Log a finished charging session (see ``SESSION_COLUMNS``)."""
        self.sessions.append(row)

    def charger_event(self, charger_id: str, event: str) -> None:
        """Log a charger failure or repair."""
        self.charger_events.append((self.model.time, charger_id, event))

    # ----------------------------------------------------------------- frames
    def timeseries(self) -> pd.DataFrame:
        """Per vehicle per minute (plus the initial rows at 0)."""
        df = pd.DataFrame.from_records(self.rows, columns=TIMESERIES_COLUMNS)
        df["state"] = df["state"].astype(str)
        for col in ("port_id", "task_id"):
            df[col] = df[col].astype("Int64")
        df["charger_id"] = df["charger_id"].astype("string")
        return df

    def grid(self) -> pd.DataFrame:
        """Per minute: price, base load, site power."""
        return pd.DataFrame.from_records(self.grid_rows, columns=GRID_COLUMNS)

    def tasks(self) -> pd.DataFrame:
        """Every task of the trace with its outcome (times empty while not done)."""
        df = pd.DataFrame.from_records(
            [
                (
                    t.task_id,
                    t.release_min,
                    t.due_min,
                    t.pickup,
                    t.dropoff,
                    t.vehicle_id,
                    t.pickup_min,
                    t.delivery_min,
                )
                for t in self.model.task_trace
            ],
            columns=TASK_COLUMNS,
        )
        df["vehicle_id"] = df["vehicle_id"].astype("Int64")
        for col in ("pickup_min", "delivery_min"):
            df[col] = df[col].astype("float64")
        return df

    def sessions_frame(self) -> pd.DataFrame:
        """Charging requests and sessions.

        Finished sessions come first, in the order they ended; then, at the end of the run,
        sessions still plugged in (reason ``open``) and requests still waiting for a port
        (reason ``waiting``, no port and no plug-in time; driving counted up to now).
        """
        rows = list(self.sessions)
        now = self.model.time
        for v in self.model.vehicles:
            s = v.session
            if s is not None:
                rows.append((v.unique_id, s[2], s[3], s[4], s[5], now, s[6], s[0], s[1], "open"))
            elif v.need_since is not None:
                drive = v.drive_during_need_min + (now - v._depart if v.moving else 0.0)
                rows.append(
                    (v.unique_id, None, None, v.need_since, None, None, drive, 0.0, 0.0, "waiting")
                )
        df = pd.DataFrame.from_records(rows, columns=SESSION_COLUMNS)
        df["port_id"] = df["port_id"].astype("Int64")
        for col in ("plug_in_min", "plug_out_min"):
            df[col] = df[col].astype("float64")
        return df

    def charger_events_frame(self) -> pd.DataFrame:
        """Charger failures and repairs."""
        return pd.DataFrame.from_records(self.charger_events, columns=CHARGER_EVENT_COLUMNS)
