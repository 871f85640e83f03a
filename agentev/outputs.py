"""A run's output files: ``summary.json`` and the tables other tools re-check.

Files (see ``docs/outputs.md`` for every column):

* ``summary.json``: flat ``parameters``, ``seed``, ``agentev_version``, the ``fleet`` list,
  the ``tariff`` and ``metrics`` (each ``{"value", "unit"}``). No timestamps or host names:
  the same seed gives a byte-identical file.
* ``timeseries.csv``: one row per vehicle per minute (plus the initial rows at 0).
* ``grid.csv``: one row per minute.
* ``tasks.csv``: one row per task of the trace.
* ``sessions.csv``: one row per charging session or still-waiting request.
* ``charger_events.csv``: charger failures and repairs.
* ``messages.jsonl`` (``negotiation`` only): every protocol message, one JSON object per line.

Floats are written at full round-trip precision. Every file is written to a temporary name
and renamed into place, so an interrupted write never leaves a truncated file behind.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import agentev
from agentev.metrics import Metric, References, compute_metrics
from agentev.model import FactoryModel
from agentev.objective import scenario_normalisers


def fleet_frame(model: FactoryModel) -> pd.DataFrame:
    """One row per vehicle: id, type, capacity, efficiency, SoC limits, charging power.

    ``max_power_kw`` is the grid-side charging power the vehicle can draw at most: its own
    limit, at most the strongest port's.
    """
    port_kw = max(c.spec.power_kw for c in model.chargers.values())
    return pd.DataFrame(
        [
            {
                "vehicle_id": v.unique_id,
                "vehicle_type": v.vtype.name,
                "capacity_kwh": v.vtype.capacity_kwh,
                "charging_efficiency": v.vtype.charging_efficiency,
                "min_soc": v.vtype.min_soc,
                "max_soc": v.vtype.max_soc,
                "chemistry": v.vtype.chemistry,
                "max_power_kw": min(v.vtype.max_charge_power_kw, port_kw),
            }
            for v in model.vehicles
        ]
    )


REPLAN_COLUMNS = ["time_min", "trigger", "status", "fallback", "objective", "message"]
OVERRIDE_COLUMNS = ["time_min", "vehicle_id", "period", "plan_charges", "rule_charges", "reason"]


def objective_settings(model: FactoryModel) -> dict[str, float]:
    """The weights and fixed normalisers of ``weighted_objective``."""
    c = model.config.controller
    norms = scenario_normalisers(model.config)
    return {
        "alpha_energy": c.alpha_energy,
        "alpha_downtime": c.alpha_downtime,
        "alpha_utilization": c.alpha_utilization,
        "energy_per_h": norms.energy_per_h,
        "downtime_per_h": norms.downtime_per_h,
        "utilization_per_h": norms.utilization_per_h,
    }


def replans_frame(model: FactoryModel) -> pd.DataFrame | None:
    """The controller's plans (planning strategies only); no wall-clock times."""
    rows = getattr(model.strategy, "replans", None)
    if rows is None:
        return None
    return pd.DataFrame([r[:5] + r[6:] for r in rows], columns=REPLAN_COLUMNS)


def messages_frame(model: FactoryModel) -> pd.DataFrame | None:
    """The negotiation messages (negotiating strategies only)."""
    rows = getattr(model.strategy, "messages", None)
    if rows is None:
        return None
    return pd.DataFrame(rows, columns=None if rows else ["type", "vehicle_id"])


def messages_jsonl(rows: list[dict]) -> str:
    """``messages.jsonl``: one JSON object per message, in the order sent."""
    return "".join(json.dumps(r, allow_nan=False) + "\n" for r in rows)


def overrides_frame(model: FactoryModel) -> pd.DataFrame | None:
    """The plan's overrides of the vehicles' own rule (planning strategies only)."""
    rows = getattr(model.strategy, "overrides", None)
    if rows is None:
        return None
    return pd.DataFrame(rows, columns=OVERRIDE_COLUMNS)


def model_metrics(
    model: FactoryModel, references: References | None = None, cheapest: bool = False
) -> dict[str, Metric]:
    """Every metric of a (finished or running) model, from its run log.

    Args:
        model: The model.
        references: Values of the same scenario and seed for the relative metrics.
        cheapest: Also compute ``cheapest_bill`` (a linear programme, about 0.2 s a day).
    """
    rec = model.recorder
    return compute_metrics(
        rec.timeseries(),
        rec.grid(),
        rec.tasks(),
        rec.sessions_frame(),
        fleet_frame(model),
        model.config.tariff,
        model.num_ports,
        sum(c.failures for c in model.chargers.values()),
        objective=objective_settings(model),
        replans=replans_frame(model),
        overrides=overrides_frame(model),
        messages=messages_frame(model),
        references=references,
        cheapest=cheapest,
        grid_limit_kw=model.config.site.grid_limit_kw,
    )


def timing(model: FactoryModel) -> dict[str, float] | None:
    """Wall-clock figures of the controller's re-plans (ms); None without a planner."""
    rows = getattr(model.strategy, "replans", None)
    if not rows:
        return None
    ms = np.array([r[5] for r in rows])
    return {
        "replan_time_median_ms": float(np.median(ms)),
        "replan_time_p95_ms": float(np.percentile(ms, 95)),
        "replan_time_max_ms": float(ms.max()),
        "replans": len(ms),
    }


def parameters(model: FactoryModel) -> dict[str, Any]:
    """The run's parameters as one flat mapping (scalars only)."""
    cfg = model.config
    types = cfg.vehicle_type_sequence()
    params: dict[str, Any] = {
        "scenario": cfg.name,
        "strategy": cfg.strategy,
        "num_vehicles": cfg.num_vehicles,
        "fleet_mix": ",".join(f"{g.vehicle_type}:{g.count}" for g in cfg.fleet if g.count),
        "num_chargers": cfg.num_chargers,
        "num_ports": model.num_ports,
        "duration_h": cfg.duration_h,
        "charge_threshold": cfg.charge_threshold,
        "initial_soc_min": cfg.initial_soc_range[0],
        "initial_soc_max": cfg.initial_soc_range[1],
    }
    for key in ("capacity_kwh", "charging_efficiency", "min_soc", "max_soc"):
        values = {getattr(t, key) for t in types}
        if len(values) == 1:
            name = "battery_capacity_kwh" if key == "capacity_kwh" else key
            params[name] = values.pop()
    params.update(
        {
            "cell_size_m": cfg.layout.cell_size_m,
            "task_process": cfg.tasks.process,
            "due_window_min": cfg.tasks.due_window_min,
            "grid_limit_kw": cfg.site.grid_limit_kw,
            "tariff": cfg.tariff.name,
            "currency": cfg.tariff.currency,
            "message_latency_s": cfg.message_latency_s,
        }
    )
    c = cfg.controller
    params.update(
        {
            "alpha_energy": c.alpha_energy,
            "alpha_downtime": c.alpha_downtime,
            "alpha_utilization": c.alpha_utilization,
            "prediction_horizon_h": c.prediction_horizon_h,
            "optimization_interval_h": c.optimization_interval_h,
            "period_min": c.period_min,
            "tail_period_min": c.tail_period_min,
            "solver": c.solver,
        }
    )
    return params


def summary(
    model: FactoryModel, metrics: dict[str, Metric], references: References | None = None
) -> dict[str, Any]:
    """The content of ``summary.json``."""
    t = model.config.tariff
    known = references.as_dict() if references is not None else {}
    extra = {"references": known} if known else {}
    return {
        "agentev_version": agentev.__version__,
        "seed": model.seed,
        "simulated_min": float(model.recorder.grid_rows[-1][0])
        if model.recorder.grid_rows
        else 0.0,
        "parameters": parameters(model),
        "fleet": fleet_frame(model).to_dict(orient="records"),
        "tariff": {
            "name": t.name,
            "source": t.source,
            "currency": t.currency,
            "energy_price_per_kwh": list(t.energy_price_per_kwh),
            "demand_charges": [
                {
                    "name": d.name,
                    "rate_per_kw_month": d.rate_per_kw_month,
                    "start_h": d.start_h,
                    "end_h": d.end_h,
                }
                for d in t.demand_charges
            ],
        },
        "objective": objective_settings(model),
        **extra,
        "metrics": {name: {"value": m.value, "unit": m.unit} for name, m in metrics.items()},
    }


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8", newline="") as fh:
        fh.write(text)
    os.replace(tmp, path)


def _csv(df: pd.DataFrame) -> str:
    return df.to_csv(index=False, lineterminator="\n")


def write_outputs(
    model: FactoryModel,
    out_dir: str | Path,
    references: References | None = None,
    cheapest: bool = True,
) -> dict[str, Metric]:
    """Write every output file of a run into ``out_dir`` and return its metrics.

    Args:
        model: A model that has run.
        out_dir: Output directory (created if missing).
        references: Values of the same scenario and seed (:func:`references_for`); add the
            relative metrics (``gap_to_lower_bound``, ``savings_captured``, ...).
        cheapest: Also compute the run's ``cheapest_bill``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rec = model.recorder
    metrics = model_metrics(model, references, cheapest)
    _write_atomic(out / "timeseries.csv", _csv(rec.timeseries()))
    _write_atomic(out / "grid.csv", _csv(rec.grid()))
    _write_atomic(out / "tasks.csv", _csv(rec.tasks()))
    _write_atomic(out / "sessions.csv", _csv(rec.sessions_frame()))
    _write_atomic(out / "charger_events.csv", _csv(rec.charger_events_frame()))
    for name, frame in (("replans", replans_frame(model)), ("overrides", overrides_frame(model))):
        if frame is not None:
            _write_atomic(out / f"{name}.csv", _csv(frame))
    messages = getattr(model.strategy, "messages", None)
    if messages is not None:
        _write_atomic(out / "messages.jsonl", messages_jsonl(messages))
    times = timing(model)
    if times is not None:
        _write_atomic(out / "timing.json", json.dumps(times, indent=2) + "\n")
    text = json.dumps(summary(model, metrics, references), indent=2, allow_nan=False)
    _write_atomic(out / "summary.json", text + "\n")
    return metrics


def bill(metrics: dict[str, Metric]) -> float:
    """A run's bill: ``energy_cost_adjusted + demand_charge`` (currency)."""
    return metrics["energy_cost_adjusted"].value + metrics["demand_charge"].value


def references_for(
    model: FactoryModel, hours: float | None = None, hindsight: bool = False, **kwargs: Any
) -> References:
    """The references of a finished run: its lower bound, fcfs's bill, the hindsight plan.

    Args:
        model: The finished run.
        hours: Its simulated hours (as given to the model).
        hindsight: Also run the ``hindsight`` strategy (a whole-run MILP, cached).
        **kwargs: The run's :class:`FactoryModel` keywords.
    """
    from agentev.optimization.bound import lower_bound

    strategy = model.config.strategy
    kwargs = {k: v for k, v in kwargs.items() if k != "strategy"}

    def other(name: str) -> tuple[FactoryModel, dict[str, Metric]]:
        if strategy == name:
            return model, model_metrics(model, cheapest=name == "fcfs")
        reference = FactoryModel(duration_h=hours, strategy=name, **kwargs)
        reference.run()
        return reference, model_metrics(reference, cheapest=name == "fcfs")

    _, fcfs = other("fcfs")
    hs = other("hindsight")[1]["weighted_objective"].value if hindsight else None
    return References(
        lower_bound_objective=lower_bound(model).objective,
        hindsight_objective=hs,
        fcfs_bill=bill(fcfs),
        fcfs_cheapest_bill=fcfs["cheapest_bill"].value,
    )


def run_and_write(
    out_dir: str | Path,
    hours: float | None = None,
    references: bool = True,
    hindsight: bool = False,
    **kwargs: Any,
):
    """Build a :class:`FactoryModel` from keywords, run it, write its outputs.

    Args:
        out_dir: Output directory.
        hours: Simulated hours (default: the scenario's duration).
        references: Also compute the lower bound and run ``fcfs`` on the same scenario and
            seed (if the run is not ``fcfs``), for ``gap_to_lower_bound``,
            ``possible_saving`` and ``savings_captured``.
        hindsight: Also run the ``hindsight`` plan, for ``gap_to_hindsight_plan``.
        **kwargs: :class:`FactoryModel` keywords (``scenario``, ``strategy``, ``rng``, ...).

    Returns:
        ``(model, metrics)``.
    """
    model = FactoryModel(duration_h=hours, **kwargs)
    model.run()
    refs = None
    if references or hindsight:
        refs = references_for(model, hours, hindsight, **kwargs)
        if not references:
            refs = References(hindsight_objective=refs.hindsight_objective)
    return model, write_outputs(model, out_dir, refs)
