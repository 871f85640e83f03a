"""Shared helpers: run a model, read a run's files back, check every run invariant.

The invariant checks take a :class:`RunLog` (the same tables either from memory or read back
from the output files), so each property is written once and checked on both.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from agentev.metrics import metrics_from_dir
from agentev.model import FactoryModel
from agentev.outputs import fleet_frame, model_metrics, write_outputs

OUTPUT_FILES = (
    "summary.json",
    "timeseries.csv",
    "grid.csv",
    "tasks.csv",
    "sessions.csv",
    "charger_events.csv",
)
ENERGY_TOL_KWH = 1e-9
POWER_TOL_KW = 1e-9


@dataclass
class RunLog:
    """One run's tables, from memory or from files."""

    timeseries: pd.DataFrame
    grid: pd.DataFrame
    tasks: pd.DataFrame
    sessions: pd.DataFrame
    charger_events: pd.DataFrame
    fleet: pd.DataFrame
    metrics: dict[str, float]
    grid_limit_kw: float | None
    duration_min: int


def log_from_model(model: FactoryModel) -> RunLog:
    rec = model.recorder
    return RunLog(
        timeseries=rec.timeseries(),
        grid=rec.grid(),
        tasks=rec.tasks(),
        sessions=rec.sessions_frame(),
        charger_events=rec.charger_events_frame(),
        fleet=fleet_frame(model),
        metrics={name: m.value for name, m in model_metrics(model, cheapest=True).items()},
        grid_limit_kw=model.config.site.grid_limit_kw,
        duration_min=model.duration_min,
    )


def read_summary(out_dir: str | Path) -> dict:
    return json.loads((Path(out_dir) / "summary.json").read_text())


def log_from_dir(out_dir: str | Path) -> RunLog:
    out = Path(out_dir)
    summary = read_summary(out)
    return RunLog(
        timeseries=pd.read_csv(out / "timeseries.csv"),
        grid=pd.read_csv(out / "grid.csv"),
        tasks=pd.read_csv(out / "tasks.csv"),
        sessions=pd.read_csv(out / "sessions.csv"),
        charger_events=pd.read_csv(out / "charger_events.csv"),
        fleet=pd.DataFrame(summary["fleet"]),
        metrics={name: m["value"] for name, m in summary["metrics"].items()},
        grid_limit_kw=summary["parameters"]["grid_limit_kw"],
        duration_min=int(round(summary["parameters"]["duration_h"] * 60)),
    )


#: Strategies without an optimiser: cheap enough for property-based exploration.
BASELINES = ("fcfs", "negotiation", "uncontrolled")


def run_model(out_dir: str | Path | None = None, **kwargs) -> FactoryModel:
    """Build a FactoryModel from keywords, run it to its end, optionally write its outputs."""
    model = FactoryModel(**kwargs)
    model.run()
    if out_dir is not None:
        write_outputs(model, out_dir)
    return model


def file_bytes(out_dir: str | Path) -> dict[str, bytes]:
    out = Path(out_dir)
    return {name: (out / name).read_bytes() for name in OUTPUT_FILES}


# --------------------------------------------------------------------------- small helpers
def plugged_mask(ts: pd.DataFrame) -> pd.Series:
    return ts["charger_id"].notna()


def steps_of(ts: pd.DataFrame) -> pd.DataFrame:
    """Rows of closed minutes (without the initial rows at time 0)."""
    return ts[ts["time_min"] > 0]


def fleet_column(log: RunLog, column: str) -> pd.Series:
    """A per-vehicle fleet attribute aligned to the timeseries rows."""
    by_id = log.fleet.set_index("vehicle_id")[column]
    return log.timeseries["vehicle_id"].map(by_id)


def failure_intervals(log: RunLog) -> list[tuple[str, float, float]]:
    """(charger_id, failed_at, repaired_at) from charger_events; open failures last to the end."""
    out = []
    open_at: dict[str, float] = {}
    for row in log.charger_events.sort_values("time_min", kind="stable").itertuples():
        if row.event == "failure":
            assert row.charger_id not in open_at, f"{row.charger_id} failed twice without repair"
            open_at[row.charger_id] = row.time_min
        else:
            assert row.event == "repair", f"unknown charger event {row.event!r}"
            assert row.charger_id in open_at, f"{row.charger_id} repaired without failure"
            out.append((row.charger_id, open_at.pop(row.charger_id), row.time_min))
    out.extend((cid, t, float(log.duration_min)) for cid, t in open_at.items())
    return out


# --------------------------------------------------------------------------- invariants
def check_log_shape(log: RunLog) -> None:
    """One row per vehicle per minute from the initial rows at 0 to the end; a grid row a minute."""
    ts = log.timeseries
    n_vehicles = len(log.fleet)
    end = log.duration_min
    assert len(ts) == n_vehicles * (end + 1)
    counts = ts.groupby("time_min")["vehicle_id"].nunique()
    assert list(counts.index) == [float(t) for t in range(end + 1)]
    assert (counts == n_vehicles).all()
    assert list(log.grid["time_min"]) == [float(t) for t in range(1, end + 1)]
    initial = ts[ts["time_min"] == 0]
    for col in ("grid_energy_kwh", "charged_energy_kwh", "consumed_energy_kwh"):
        assert (initial[col] == 0.0).all()


def check_energy_identities(log: RunLog) -> None:
    """charged = grid x efficiency per row; delta SoC x capacity = charged - consumed per step."""
    ts = log.timeseries
    eff = fleet_column(log, "charging_efficiency")
    gap = (ts["grid_energy_kwh"] * eff - ts["charged_energy_kwh"]).abs()
    worst = gap.idxmax()
    assert gap.max() <= ENERGY_TOL_KWH, f"grid x eff != charged in row {ts.loc[worst].to_dict()}"
    assert (ts["grid_energy_kwh"] >= 0).all()
    assert (ts["charged_energy_kwh"] >= 0).all()
    assert (ts["consumed_energy_kwh"] >= 0).all()
    assert np.allclose(ts["power_kw"], ts["grid_energy_kwh"] * 60.0, rtol=0, atol=1e-9)

    ordered = ts.sort_values(["vehicle_id", "time_min"], kind="stable")
    energy = ordered["soc"] * ordered["capacity_kwh"]
    delta = energy.groupby(ordered["vehicle_id"]).diff()
    net = ordered["charged_energy_kwh"] - ordered["consumed_energy_kwh"]
    first = ordered["time_min"] == 0
    assert delta[first].isna().all()
    mismatch = (delta[~first] - net[~first]).abs()
    assert mismatch.notna().all()
    assert mismatch.max() <= ENERGY_TOL_KWH, (
        f"SoC change x capacity != charged - consumed: {ordered.loc[mismatch.idxmax()].to_dict()}"
    )


def check_soc_bounds(log: RunLog) -> None:
    ts = log.timeseries
    max_soc = fleet_column(log, "max_soc")
    assert (ts["soc"] >= 0.0).all(), ts[ts["soc"] < 0.0]
    over = ts[ts["soc"] > max_soc]
    assert over.empty, f"SoC above max_soc: {over.head().to_dict('records')}"


def check_ports_exclusive(log: RunLog) -> None:
    """No port serves two vehicles in one minute, and sessions on one port never overlap."""
    ts = log.timeseries
    plugged = ts[plugged_mask(ts)]
    dup = plugged[plugged.duplicated(["time_min", "charger_id", "port_id"], keep=False)]
    assert dup.empty, f"port shared within a minute: {dup.to_dict('records')}"
    # nor does one vehicle appear twice in a minute
    assert not ts.duplicated(["time_min", "vehicle_id"]).any()

    sessions = log.sessions.dropna(subset=["plug_in_min"])
    assert (sessions["plug_out_min"] >= sessions["plug_in_min"]).all()
    for key, group in (("charger_id", "port_id"), ("vehicle_id", None)):
        cols = [key] if group is None else [key, group]
        for ids, s in sessions.groupby(cols):
            s = s.sort_values("plug_in_min", kind="stable")
            starts = s["plug_in_min"].to_numpy()[1:]
            ends = s["plug_out_min"].to_numpy()[:-1]
            assert (starts >= ends).all(), f"overlapping sessions on {ids}: {s.to_dict('records')}"


def check_plug_columns(log: RunLog) -> None:
    """charger_id/port_id are set exactly when plugged in for a positive time in [t-1, t)."""
    ts = log.timeseries
    plugged = plugged_mask(ts)
    assert (plugged == ts["port_id"].notna()).all()
    assert not plugged[ts["time_min"] == 0].any()
    drawing = ts["grid_energy_kwh"] > 0
    assert not (drawing & ~plugged).any(), ts[drawing & ~plugged]
    charging = ts["state"] == "charging"
    assert not (charging & ~plugged).any(), ts[charging & ~plugged]

    # Expected from sessions: a session [in, out] overlaps minute [t-1, t) for a positive
    # time if in < t and out > t - 1.
    sessions = log.sessions.dropna(subset=["plug_in_min"])
    end = log.duration_min
    expected: dict[tuple[float, int], set[tuple[str, int]]] = {}
    for s in sessions.itertuples():
        first = math.floor(s.plug_in_min) + 1
        last = min(end, math.ceil(s.plug_out_min))
        for t in range(first, last + 1):
            # A vehicle re-plugged within one minute shows one of its sessions.
            expected.setdefault((float(t), int(s.vehicle_id)), set()).add(
                (str(s.charger_id), int(s.port_id))
            )
    rows = ts[plugged]
    actual = {
        (float(r.time_min), int(r.vehicle_id)): (str(r.charger_id), int(r.port_id))
        for r in rows.itertuples()
    }
    missing = sorted(set(expected) - set(actual))
    extra = sorted(set(actual) - set(expected))
    assert not missing, f"plugged-in minutes without charger_id: {missing[:5]}"
    assert not extra, f"charger_id set without a session: {extra[:5]}"
    wrong = [k for k in actual if actual[k] not in expected[k]]
    assert not wrong, f"charger/port differ from the session: {wrong[:5]}"


def check_task_order(log: RunLog) -> None:
    """Released before picked up, picked up before delivered; times within the run."""
    tasks = log.tasks
    end = log.duration_min
    assert list(tasks["task_id"]) == list(range(len(tasks)))
    assert (tasks["release_min"].diff().dropna() >= 0).all()
    assert (tasks["release_min"] < end).all() and (tasks["release_min"] >= 0).all()
    assert (tasks["due_min"] > tasks["release_min"]).all()
    picked = tasks[tasks["pickup_min"].notna()]
    delivered = tasks[tasks["delivery_min"].notna()]
    assert delivered["pickup_min"].notna().all()
    assert (picked["release_min"] <= picked["pickup_min"]).all()
    assert (delivered["pickup_min"] < delivered["delivery_min"]).all()
    assert (delivered["delivery_min"] <= end).all()
    assert picked["vehicle_id"].notna().all()
    assert (tasks["pickup_station"] != tasks["dropoff_station"]).all()

    # The task a vehicle carries in the timeseries is assigned to that vehicle.
    ts = log.timeseries
    carried = ts[ts["task_id"].notna()]
    owner = tasks.set_index("task_id")["vehicle_id"]
    assert (carried["task_id"].map(owner).to_numpy() == carried["vehicle_id"].to_numpy()).all()
    # A task shows in the timeseries only after its release and until its delivery.
    release = carried["task_id"].map(tasks.set_index("task_id")["release_min"])
    assert (carried["time_min"] >= release).all()
    delivery = carried["task_id"].map(tasks.set_index("task_id")["delivery_min"])
    assert not (carried["time_min"] > delivery).any()


def check_costs_and_site_power(log: RunLog) -> None:
    """energy_cost and grid energy from the per-minute tables; site power = base + charging."""
    steps = steps_of(log.timeseries)
    fleet_grid = steps.groupby("time_min")["grid_energy_kwh"].sum()
    grid = log.grid.set_index("time_min")
    assert list(fleet_grid.index) == list(grid.index)
    cost = float((fleet_grid * grid["price_per_kwh"]).sum())
    m = log.metrics
    assert math.isclose(m["energy_cost"], cost, rel_tol=1e-9, abs_tol=1e-12)
    assert math.isclose(m["grid_energy_kwh"], float(steps["grid_energy_kwh"].sum()), rel_tol=1e-9)
    assert math.isclose(
        m["charged_energy_kwh"], float(steps["charged_energy_kwh"].sum()), rel_tol=1e-9
    )
    expected_site = grid["base_load_kw"] + 60.0 * fleet_grid
    assert np.allclose(grid["site_power_kw"], expected_site, rtol=0, atol=POWER_TOL_KW)
    assert (grid["site_power_kw"] >= grid["base_load_kw"]).all()
    if log.grid_limit_kw is not None:
        over = grid[grid["site_power_kw"] > log.grid_limit_kw + POWER_TOL_KW]
        assert over.empty, f"site power above the grid limit {log.grid_limit_kw}: {over.head()}"


def check_failures(log: RunLog) -> None:
    """No vehicle is plugged into a charger while it is out of order."""
    sessions = log.sessions.dropna(subset=["plug_in_min"])
    ts = log.timeseries
    for cid, failed, repaired in failure_intervals(log):
        assert repaired >= failed
        on = sessions[sessions["charger_id"] == cid]
        clash = on[(on["plug_in_min"] < repaired) & (on["plug_out_min"] > failed)]
        assert clash.empty, f"{cid} in use while failed [{failed}, {repaired}): {clash}"
        # minutes [t-1, t) wholly within the failure show nobody on that charger
        rows = ts[(ts["charger_id"] == cid) & (ts["time_min"] - 1 >= failed)]
        rows = rows[rows["time_min"] <= repaired]
        assert rows.empty, f"{cid} shown in use while failed: {rows.head()}"
    failures = int((log.charger_events["event"] == "failure").sum())
    assert log.metrics["charger_failures"] == failures


def check_invariants(log: RunLog) -> None:
    check_log_shape(log)
    check_energy_identities(log)
    check_soc_bounds(log)
    check_ports_exclusive(log)
    check_plug_columns(log)
    check_task_order(log)
    check_costs_and_site_power(log)
    check_failures(log)


def assert_metrics_recomputable(out_dir: str | Path) -> None:
    """metrics_from_dir(out_dir) gives exactly the metrics in summary.json."""
    stored = {name: m["value"] for name, m in read_summary(out_dir)["metrics"].items()}
    recomputed = {name: m.value for name, m in metrics_from_dir(out_dir).items()}
    assert list(recomputed) == list(stored)
    diff = {k: (stored[k], recomputed[k]) for k in stored if stored[k] != recomputed[k]}
    assert not diff, f"metrics recomputed from files differ: {diff}"


def assert_invariants(out_dir: str | Path, model: FactoryModel | None = None) -> None:
    """Check every run invariant on the written files, and on the model's memory if given."""
    check_invariants(log_from_dir(out_dir))
    assert_metrics_recomputable(out_dir)
    if model is not None:
        check_invariants(log_from_model(model))
