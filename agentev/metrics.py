"""Every reported metric, defined once, computed from the run log.

The functions here take the same tables a run writes (``timeseries.csv``, ``grid.csv``,
``tasks.csv``, ``sessions.csv`` and the fleet list in ``summary.json``), so the figures can be
recomputed from the output files by anyone (:func:`metrics_from_dir`). Times are minutes; the
run ends at ``T``, the last recorded minute. A task counts as released if released before
``T``; samples at a minute's end ``t`` see the state before events at exactly ``t``.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from agentev.agents.vehicle import WORKING_STATES
from agentev.config import DemandCharge, TariffConfig
from agentev.objective import Normalisers, weighted_objective
from agentev.tariff import demand_charge

_WORKING = sorted(s.value for s in WORKING_STATES)


@dataclass(frozen=True)
class Metric:
    """A metric's value, unit and one-line definition."""

    value: float
    unit: str
    definition: str


DEFINITIONS: dict[str, tuple[str, str]] = {
    "grid_energy_kwh": ("kWh", "energy drawn from the grid for charging the fleet"),
    "charged_energy_kwh": ("kWh", "energy added to the batteries"),
    "consumed_energy_kwh": ("kWh", "energy used by driving, handling and standing"),
    "charging_losses_kwh": ("kWh", "grid energy minus charged energy"),
    "energy_cost": ("currency", "sum over minutes of fleet grid energy x that minute's price"),
    "demand_charge": (
        "currency",
        "demand charges on the highest 15-minute mean site power, pro-rated to the run",
    ),
    "total_cost": ("currency", "energy_cost + demand_charge"),
    "peak_site_power_kw": ("kW", "highest 15-minute mean site power (base load + charging)"),
    "stored_energy_change_kwh": ("kWh", "fleet battery energy at the end minus at the start"),
    "energy_cost_adjusted": (
        "currency",
        "energy_cost minus the stored-energy change, as grid energy (/ efficiency), "
        "at the run's time-mean price",
    ),
    "tasks_released": ("count", "tasks released before the end"),
    "tasks_completed": ("count", "released tasks delivered before the end"),
    "completion_ratio": ("fraction", "tasks_completed / tasks_released"),
    "response_time_mean_min": (
        "min",
        "mean of release to pick-up; tasks not picked up count with their wait so far",
    ),
    "response_time_p95_min": ("min", "95th percentile of the same"),
    "tardiness_mean_min": (
        "min",
        "mean over released tasks of max(0, delivery - due); undelivered: max(0, end - due)",
    ),
    "service_shortfall_vehicle_h": (
        "vehicle-h",
        "sum over minutes of max(0, open tasks - vehicles able to work), in hours",
    ),
    "availability": ("fraction", "share of vehicle-minutes in a state able to work"),
    "charger_utilization": ("fraction", "plugged-in port time / (ports x run time)"),
    "charger_wait_mean_min": (
        "min",
        "mean of need-to-plug-in minus driving, per charge; still waiting: wait so far",
    ),
    "charging_sessions": ("count", "charging sessions started"),
    "equivalent_full_cycles": ("cycles per vehicle", "mean of charged energy / capacity"),
    "soc_violations": ("count", "times a vehicle's state of charge fell below its min_soc"),
    "charger_failures": ("count", "charger failures during the run"),
    "occupied_port_h": ("port-h", "port-hours occupied by plugged-in vehicles"),
    "weighted_objective": (
        "1",
        "alpha_E (energy_cost_adjusted + demand_charge) / N_E + alpha_D shortfall / N_D "
        "+ alpha_U (sessions + occupied_port_h) / N_U, fixed normalisers (agentev.objective)",
    ),
    "replans": ("count", "charging plans solved by the twin controller"),
    "solver_fallbacks": ("count", "plans not delivered by the solver within its limits"),
    "overrides": ("count", "(vehicle, period) pairs where the plan overrode the vehicle's rule"),
    "messages_sent": ("count", "negotiation messages sent (lines of messages.jsonl)"),
    "negotiation_rounds_per_charge": (
        "1",
        "calls-for-proposals rounds (vehicle, request, round) per charging session started",
    ),
    "rejected_proposals": ("count", "accepted proposals the charger rejected (slot taken)"),
    "base_load_demand_charge": (
        "currency",
        "demand charges of the base load alone: the part of the bill no charging decision moves",
    ),
    "movable_cost": (
        "currency",
        "energy_cost_adjusted + demand_charge - base_load_demand_charge: what charging can move",
    ),
    "movable_cost_share": ("fraction", "movable_cost / (energy_cost_adjusted + demand_charge)"),
}
#: Metrics against references of the same scenario and seed (:class:`References`), present
#: only when the reference is known.
REFERENCE_DEFINITIONS: dict[str, tuple[str, str]] = {
    "cheapest_bill": (
        "currency",
        "lowest energy_cost_adjusted + demand_charge at which this run's logged consumption "
        "could have been charged, vehicles plugged in only while not carrying a task (LP with "
        "perfect knowledge, agentev.optimization.bound)",
    ),
    "lower_bound_objective": (
        "1",
        "J_lb: a lower bound of weighted_objective over every run of this scenario and seed "
        "(LP relaxation, agentev.optimization.bound)",
    ),
    "gap_to_lower_bound": ("1", "(weighted_objective - J_lb) / J_lb, never negative"),
    "hindsight_objective": (
        "1",
        "weighted_objective of the executed hindsight plan (strategy hindsight) of this "
        "scenario and seed: a second reference, not an optimum",
    ),
    "gap_to_hindsight_plan": (
        "1",
        "(weighted_objective - hindsight_objective) / hindsight_objective; may be negative",
    ),
    "possible_saving": (
        "currency",
        "fcfs's bill minus fcfs's cheapest_bill for the same scenario and seed: what charging "
        "decisions alone could have saved on fcfs's day",
    ),
    "savings_captured": (
        "fraction",
        "(fcfs's bill - this run's bill) / possible_saving; bill = energy_cost_adjusted + "
        "demand_charge; 0 for fcfs itself",
    ),
}
#: A possible saving below this share of fcfs's bill is solver tolerance, not a saving:
#: ``savings_captured`` is then undefined and left out.
SAVING_TOL = 1e-9
#: Old metric names, readable for one release (with a DeprecationWarning) -> new names.
DEPRECATED_METRICS = {"gap_to_offline_optimum": "gap_to_hindsight_plan"}


@dataclass(frozen=True)
class References:
    """Values of the same scenario and seed that the relative metrics compare a run with.

    Attributes:
        lower_bound_objective: :math:`J_{lb}` (:func:`agentev.optimization.bound.lower_bound`).
        hindsight_objective: ``weighted_objective`` of the ``hindsight`` run.
        fcfs_bill: ``energy_cost_adjusted + demand_charge`` of the ``fcfs`` run.
        fcfs_cheapest_bill: ``cheapest_bill`` of the ``fcfs`` run.
    """

    lower_bound_objective: float | None = None
    hindsight_objective: float | None = None
    fcfs_bill: float | None = None
    fcfs_cheapest_bill: float | None = None

    def as_dict(self) -> dict[str, float]:
        """The known values (for ``summary.json``)."""
        return {k: v for k, v in asdict(self).items() if v is not None}


def relative_metrics(
    objective: float, bill: float, references: References, cheapest: float | None = None
) -> dict[str, float]:
    """The metrics of :data:`REFERENCE_DEFINITIONS` that the references make known.

    Args:
        objective: The run's ``weighted_objective``.
        bill: The run's ``energy_cost_adjusted + demand_charge``.
        references: The references.
        cheapest: The run's own ``cheapest_bill``, if computed.
    """
    out: dict[str, float] = {}
    if cheapest is not None:
        out["cheapest_bill"] = cheapest
    lb = references.lower_bound_objective
    if lb is not None:
        out["lower_bound_objective"] = lb
        out["gap_to_lower_bound"] = (objective - lb) / lb if lb > 0 else float("nan")
    hs = references.hindsight_objective
    if hs is not None:
        out["hindsight_objective"] = hs
        out["gap_to_hindsight_plan"] = (objective - hs) / hs if hs != 0 else float("nan")
    if references.fcfs_bill is not None and references.fcfs_cheapest_bill is not None:
        # never negative: fcfs's own charging is a feasible point of the cheapest bill's LP
        # (a difference below the solver's tolerance is no saving)
        possible = references.fcfs_bill - references.fcfs_cheapest_bill
        possible = possible if possible > SAVING_TOL * max(1.0, abs(references.fcfs_bill)) else 0.0
        out["possible_saving"] = possible
        if possible > 0.0:
            out["savings_captured"] = (references.fcfs_bill - bill) / possible
    return {k: v for k, v in out.items() if not math.isnan(v)}


def compute_metrics(
    timeseries: pd.DataFrame,
    grid: pd.DataFrame,
    tasks: pd.DataFrame,
    sessions: pd.DataFrame,
    fleet: pd.DataFrame,
    tariff: TariffConfig,
    num_ports: int,
    charger_failures: int = 0,
    objective: dict[str, float] | None = None,
    replans: pd.DataFrame | None = None,
    overrides: pd.DataFrame | None = None,
    messages: pd.DataFrame | None = None,
    references: References | None = None,
    cheapest: bool = False,
    grid_limit_kw: float | None = None,
) -> dict[str, Metric]:
    """Compute every metric of a run from its log.

    Args:
        timeseries: Per vehicle per minute (with the initial rows at 0).
        grid: Per minute.
        tasks: Per task.
        sessions: Per charging request (``plug_in_min`` empty while still waiting).
        fleet: Per vehicle: ``vehicle_id``, ``capacity_kwh``, ``charging_efficiency``,
            ``min_soc``.
        tariff: The tariff (for demand charges).
        num_ports: Charger ports in use.
        charger_failures: Number of charger failures.
        objective: Weights and normalisers (``alpha_energy``, ``alpha_downtime``,
            ``alpha_utilization``, ``energy_per_h``, ``downtime_per_h``,
            ``utilization_per_h``); None: ``weighted_objective`` is 0.
        replans: The controller's plans (``replans.csv``), if any.
        overrides: The plan's overrides (``overrides.csv``), if any.
        messages: The negotiation messages (``messages.jsonl``), if any.
        references: Values of the same scenario and seed; add the metrics of
            :data:`REFERENCE_DEFINITIONS` they make known.
        cheapest: Also compute ``cheapest_bill`` (a linear programme; the fleet table then
            needs ``max_power_kw`` and ``max_soc``).
        grid_limit_kw: The site's connection limit (kW), for ``cheapest_bill``.

    Returns:
        Metric name to :class:`Metric`, in the order of :data:`DEFINITIONS`; money is in the
        tariff's currency (its code is the unit).
    """
    v: dict[str, float] = {}
    end = float(grid["time_min"].max()) if len(grid) else 0.0
    steps = timeseries[timeseries["time_min"] > 0]
    fleet = fleet.set_index("vehicle_id")

    # energy and cost
    per_minute_grid = steps.groupby("time_min", sort=True)["grid_energy_kwh"].sum()
    price = grid.set_index("time_min")["price_per_kwh"]
    v["grid_energy_kwh"] = float(steps["grid_energy_kwh"].sum())
    v["charged_energy_kwh"] = float(steps["charged_energy_kwh"].sum())
    v["consumed_energy_kwh"] = float(steps["consumed_energy_kwh"].sum())
    v["charging_losses_kwh"] = v["grid_energy_kwh"] - v["charged_energy_kwh"]
    v["energy_cost"] = float((per_minute_grid * price.reindex(per_minute_grid.index)).sum())
    charge, peak = demand_charge(tariff, grid["site_power_kw"].to_numpy())
    v["demand_charge"] = charge
    v["total_cost"] = v["energy_cost"] + charge
    v["peak_site_power_kw"] = peak
    energy = timeseries["soc"] * timeseries["capacity_kwh"]
    by_vehicle = energy.groupby(timeseries["vehicle_id"])
    delta = by_vehicle.last() - by_vehicle.first()
    v["stored_energy_change_kwh"] = float(delta.sum())
    mean_price = float(price.mean()) if len(price) else 0.0
    grid_equivalent = float((delta / fleet["charging_efficiency"].reindex(delta.index)).sum())
    v["energy_cost_adjusted"] = v["energy_cost"] - grid_equivalent * mean_price

    # tasks
    released = tasks[tasks["release_min"] < end]
    picked = released["pickup_min"].where(released["pickup_min"] < end)
    delivered = released["delivery_min"].where(released["delivery_min"] < end)
    n = len(released)
    v["tasks_released"] = float(n)
    v["tasks_completed"] = float(delivered.notna().sum())
    v["completion_ratio"] = v["tasks_completed"] / n if n else 1.0
    response = picked.fillna(end) - released["release_min"]
    v["response_time_mean_min"] = float(response.mean()) if n else 0.0
    v["response_time_p95_min"] = float(np.percentile(response, 95)) if n else 0.0
    late = (delivered.fillna(end) - released["due_min"]).clip(lower=0.0)
    v["tardiness_mean_min"] = float(late.mean()) if n else 0.0

    # service and availability
    times = np.sort(steps["time_min"].unique())
    rel = np.sort(released["release_min"].to_numpy())
    dlv = np.sort(delivered.dropna().to_numpy())
    open_tasks = np.searchsorted(rel, times, side="left") - np.searchsorted(dlv, times, side="left")
    able_rows = steps["state"].isin(_WORKING)
    able = able_rows.groupby(steps["time_min"]).sum().reindex(times).to_numpy()
    v["service_shortfall_vehicle_h"] = float(np.clip(open_tasks - able, 0, None).sum()) / 60.0
    v["availability"] = float(able_rows.mean()) if len(steps) else 1.0

    # chargers
    plugged = sessions.dropna(subset=["plug_in_min"])
    port_minutes = (plugged["plug_out_min"].clip(upper=end) - plugged["plug_in_min"]).sum()
    v["charger_utilization"] = float(port_minutes) / (num_ports * end) if end else 0.0
    wait = sessions["plug_in_min"].fillna(end) - sessions["need_min"] - sessions["drive_min"]
    v["charger_wait_mean_min"] = float(wait.mean()) if len(sessions) else 0.0
    v["charging_sessions"] = float(len(plugged))
    charged = steps.groupby("vehicle_id")["charged_energy_kwh"].sum()
    cycles = charged / fleet["capacity_kwh"].reindex(charged.index)
    v["equivalent_full_cycles"] = float(cycles.mean()) if len(cycles) else 0.0
    v["soc_violations"] = float(_violations(timeseries, fleet["min_soc"]))
    v["charger_failures"] = float(charger_failures)
    v["occupied_port_h"] = float(port_minutes) / 60.0
    if objective is not None:
        norms = Normalisers(
            objective["energy_per_h"], objective["downtime_per_h"], objective["utilization_per_h"]
        )
        v["weighted_objective"] = weighted_objective(
            v,
            end / 60.0,
            norms,
            objective["alpha_energy"],
            objective["alpha_downtime"],
            objective["alpha_utilization"],
        )
    else:
        v["weighted_objective"] = 0.0
    v["replans"] = float(len(replans)) if replans is not None else 0.0
    v["solver_fallbacks"] = float(replans["fallback"].sum()) if replans is not None else 0.0
    v["overrides"] = float(len(overrides)) if overrides is not None else 0.0
    if messages is not None and len(messages):
        calls = messages[messages["type"] == "cfp"]
        rounds = len(calls[["vehicle_id", "request", "round"]].drop_duplicates())
        v["messages_sent"] = float(len(messages))
        v["negotiation_rounds_per_charge"] = rounds / len(plugged) if len(plugged) else 0.0
        v["rejected_proposals"] = float((messages["type"] == "reject").sum())
    else:
        v["messages_sent"] = v["negotiation_rounds_per_charge"] = v["rejected_proposals"] = 0.0
    base_kw = grid["base_load_kw"].to_numpy(dtype=float)
    v["base_load_demand_charge"] = demand_charge(tariff, base_kw)[0]
    bill = v["energy_cost_adjusted"] + v["demand_charge"]
    v["movable_cost"] = bill - v["base_load_demand_charge"]
    v["movable_cost_share"] = v["movable_cost"] / bill if bill else 0.0
    out = {
        name: Metric(v[name], tariff.currency if unit == "currency" else unit, text)
        for name, (unit, text) in DEFINITIONS.items()
    }
    own = None
    if cheapest:
        from agentev.optimization.bound import cheapest_bill

        own = cheapest_bill(
            timeseries,
            grid,
            tasks,
            fleet.reset_index(),
            tariff.demand_charges,
            num_ports,
            grid_limit_kw,
        ).bill
    relative = relative_metrics(v["weighted_objective"], bill, references or References(), own)
    for name, (unit, text) in REFERENCE_DEFINITIONS.items():
        if name in relative:
            unit = tariff.currency if unit == "currency" else unit
            out[name] = Metric(relative[name], unit, text)
    return out


def _violations(timeseries: pd.DataFrame, min_soc: pd.Series) -> int:
    """Downward crossings of ``min_soc`` (a vehicle starting below counts once)."""
    below = timeseries["soc"] < timeseries["vehicle_id"].map(min_soc)
    ordered = below.groupby(timeseries["vehicle_id"])
    before = ordered.shift(1, fill_value=False)
    return int((below & ~before).sum())


def tariff_from_summary(summary: dict) -> TariffConfig:
    """The tariff as stored in ``summary.json``."""
    t = summary["tariff"]
    return TariffConfig(
        name=t["name"],
        source=t["source"],
        currency=t["currency"],
        energy_price_per_kwh=tuple(t["energy_price_per_kwh"]),
        demand_charges=tuple(DemandCharge(**d) for d in t["demand_charges"]),
    )


def references_from_summary(summary: dict) -> References:
    """The references stored in ``summary.json`` (an old ``oracle_weighted_objective`` warns)."""
    known = dict(summary.get("references", {}))
    if "oracle_weighted_objective" in summary:
        warnings.warn(
            "summary.json key 'oracle_weighted_objective' is deprecated; it is read as "
            "references.hindsight_objective (gap_to_hindsight_plan)",
            DeprecationWarning,
            stacklevel=3,
        )
        known.setdefault("hindsight_objective", summary["oracle_weighted_objective"])
    return References(**known)


def metrics_from_dir(out_dir: str | Path) -> dict[str, Metric]:
    """Recompute every metric from a run's output files."""
    out = Path(out_dir)
    summary = json.loads((out / "summary.json").read_text())
    optional = {
        name: pd.read_csv(out / f"{name}.csv") if (out / f"{name}.csv").exists() else None
        for name in ("replans", "overrides")
    }
    messages = read_messages(out / "messages.jsonl") if (out / "messages.jsonl").exists() else None
    return compute_metrics(
        pd.read_csv(out / "timeseries.csv"),
        pd.read_csv(out / "grid.csv"),
        pd.read_csv(out / "tasks.csv"),
        pd.read_csv(out / "sessions.csv"),
        pd.DataFrame(summary["fleet"]),
        tariff_from_summary(summary),
        int(summary["parameters"]["num_ports"]),
        int(summary["metrics"]["charger_failures"]["value"]),
        objective=summary["objective"],
        replans=optional["replans"],
        overrides=optional["overrides"],
        messages=messages,
        references=references_from_summary(summary),
        cheapest="cheapest_bill" in summary["metrics"],
        grid_limit_kw=summary["parameters"].get("grid_limit_kw"),
    )


def read_messages(path: str | Path) -> pd.DataFrame:
    """``messages.jsonl`` as a table (one row per message, the union of the fields)."""
    with open(path, encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    return pd.DataFrame(rows, columns=None if rows else ["type", "vehicle_id"])
