"""OptimizationController: turns a twin snapshot into a charging plan, every interval.

It reads only a :class:`~agentev.agents.controller.TwinState` (plus the static scenario: the
tariff, vehicle types, layout distances) and returns a :class:`Plan`; the ``intelligent``
strategy carries the plan out through the fleet command interface.

How the snapshot becomes a :class:`PlanInput`:

* periods start now; prices, base load and demand-charge windows are those of each period's
  start minute;
* task demand: the forecaster's arrivals per period times the mean job duration gives the
  vehicles needed (Little's law); every vehicle that does not charge is assumed to share the
  work, consuming ``needed / fleet`` of its working power and standby power otherwise;
* the tasks waiting in the dispatcher's backlog need vehicles on top of the forecast: all of
  them in the first period, fading linearly to none at the end of the first re-plan interval
  (a backlog is a burst of arrivals the rate forecast does not see; the ``intelligent``
  strategy re-plans when one builds up while vehicles charge);
* a vehicle busy with a task is free to charge from the next period on; a lead-acid vehicle
  that is not plugged in is free only when below its threshold (its chemistry rule);
* a failed charger is unavailable for the whole horizon;
* move blocking: the periods after the first re-plan interval are ``tail_period_min`` long
  (default 60 minutes). A block's price and needed vehicles are the means over its
  quarter-hours, its base load the highest, its consumption the sum; it is free to charge
  only if one window covers all of it, and in a demand charge's window if any quarter-hour
  is. Only the first interval is carried out before the next re-plan; the tail values the
  state it leaves. On light seeds 1-5 a day took 0.54 times the wall time of sixteen
  quarter-hours, with 0.995 times the weighted objective
  (``benchmarks/bench_planner.py --compare-tail``). The returned plan is in ``period_min``
  periods;
* fleets of ``HIERARCHICAL_MIN_VEHICLES`` or more are planned by the two-stage
  :class:`~agentev.optimization.hierarchical.HierarchicalPlanner`;
* adaptive weights: the downtime weight is multiplied by ``1 + min(backlog / fleet, 3)``, so it
  rises with the task backlog up to four times its base value.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING

import numpy as np

from agentev.config import ScenarioConfig
from agentev.forecasting import DemandForecaster, load_task_log, make_forecaster
from agentev.objective import Normalisers, scenario_normalisers
from agentev.optimization.hierarchical import HIERARCHICAL_MIN_VEHICLES, make_planner
from agentev.optimization.planner import (
    ChargingPlanner,
    Plan,
    PlanCharger,
    PlanDemandCharge,
    PlanInput,
    PlanVehicle,
    block_periods,
    coarse_tail_lengths,
)
from agentev.optimization.solvers import SolverOptions
from agentev.tariff import DAYS_PER_MONTH

if TYPE_CHECKING:
    from agentev.agents.controller import TwinState
    from agentev.model import FactoryModel

BACKLOG_WEIGHT_CAP = 3.0


class OptimizationController:
    """Multi-objective rolling-horizon charging optimiser (the seed's API).

    Args:
        prediction_horizon: Horizon (hours).
        optimization_interval: Time between scheduled re-plans (hours).
        period_min: Period length (minutes).
        solver: Solver name (``"highs"``, ``"glpk"``, or another Pyomo solver).
        mip_gap: Relative MIP gap.
        node_limit: Branch-and-bound node limit (HiGHS): the deterministic stop of a
            re-plan that has not closed its gap (its incumbent is used, no fallback). At
            1,000 rather than 5,000, 250 re-plans replayed from light seeds 3 and 55,
            heavy seed 42 and continuous seed 42 (72 h) gave the same objective in every
            one, and light's took 5.0 s rather than 9.1 s: its slowest re-plan found its
            plan at node 18 and spent 4,100 nodes and 4.3 s moving the bound from 2.1 % to
            the 1 % gap. At 500 rather than 1,000 (with the backlog re-plans) the weighted
            objectives were identical, run by run, on light, heavy and flexible seeds 0-15
            and continuous 0-3, and light seed 55's day took 4.1 s rather than 6.1 s.
        time_limit_s: Wall-clock safety net per solve (s).
        forecaster: The task demand forecaster by name (``agentev.forecasting``): ``"rate"``
            (the scenario's expected arrival rate), ``"none"``, a learned one (``"naive"``,
            ``"random_forest"``, ``"gaussian_process"``, ``"ensemble"``, ``"lstm"``) or
            ``"perfect"`` (the realised task trace, for ablation).
        forecast_quantile: Robust planning: the learned forecasters' upper quantile of the
            task demand that the plan provides for (e.g. 0.9); None: their mean.
        warmup_days: Days of simulated history the learned forecasters train on.
        task_log: A CSV task log to train the learned forecasters on instead (path).
        soc_reserve: The plan keeps each battery this far above its ``min_soc`` (a soft
            bound, fraction of capacity): the forecast spreads the work evenly over the
            fleet, the real work comes in jobs, and a vehicle that drops below its safety
            margin calls for a charge by itself and makes the plan stale. At 0.10 (twice
            the safety margin) rather than 0.05, fewer vehicles reach the margin: 12 heavy
            seeds re-planned 51 rather than 68 times a day, with a weighted objective of
            1.949 rather than 2.022; 10 light seeds 33 rather than 44 times (3.6 s rather
            than 4.4 s a day), objective 1.718 rather than 1.726.
        sub_mip_heuristics: Keep HiGHS's sub-MIP heuristics (see ``SolverOptions``).
        rounding_gap: Gap within which a fleet-level plan by LP rounding is kept (see
            ``SolverOptions``; None: no rounding).
        min_session_min: Shortest plug-in session the plan may start (minutes), within the
            first re-plan interval; None: no minimum. At 30 min rather than none, a heavy
            run took 13 s rather than 26 s (``benchmarks/bench_campaign.py``) and its
            weighted objective over 30 seeds was 1.926 rather than 1.978 (light: 1.718
            rather than 1.730): the plans had rotated vehicles through quarter-hour
            sessions (18 sessions in 4 h for 12 vehicles, each a drive to the charger),
            which is also where their LP bound was weakest.
        tail_period_min: Length of the periods after the first re-plan interval (minutes),
            a multiple of ``period_min``; None: every period is ``period_min`` long. Fleets
            planned hierarchically always use ``period_min``.
    """

    def __init__(
        self,
        prediction_horizon: float = 4,
        optimization_interval: float = 1,
        period_min: float = 15,
        solver: str = "highs",
        mip_gap: float = 0.01,
        node_limit: int = 500,
        time_limit_s: float = 20.0,
        forecaster: str = "rate",
        forecast_quantile: float | None = None,
        warmup_days: int = 7,
        task_log: str | None = None,
        soc_reserve: float = 0.10,
        sub_mip_heuristics: bool = False,
        rounding_gap: float | None = None,
        min_session_min: float | None = 30.0,
        tail_period_min: float | None = 60.0,
    ) -> None:
        self.horizon_h = prediction_horizon
        self.interval_h = optimization_interval
        self.period_min = period_min
        self.periods = max(1, int(round(prediction_horizon * 60 / period_min)))
        # binary decisions for the periods carried out before the next scheduled re-plan
        self.binary_periods = max(1, math.ceil(optimization_interval * 60 / period_min - 1e-9))
        self.options = SolverOptions(
            solver=solver,
            mip_gap=mip_gap,
            node_limit=node_limit,
            time_limit_s=time_limit_s,
            sub_mip_heuristics=sub_mip_heuristics,
            rounding_gap=rounding_gap,
        )
        self.min_session_periods = (
            1 if not min_session_min else max(1, math.ceil(min_session_min / period_min - 1e-9))
        )
        self.tail_period_min = tail_period_min
        self.lengths = (
            [float(period_min)] * self.periods
            if tail_period_min is None
            else coarse_tail_lengths(self.periods, period_min, self.binary_periods, tail_period_min)
        )
        self.forecaster_name = forecaster
        self.forecast_quantile = forecast_quantile
        self.warmup_days = warmup_days
        self.task_log = task_log
        self.soc_reserve = soc_reserve
        self.planner: ChargingPlanner | None = None
        self.forecaster: DemandForecaster | None = None
        self.config: ScenarioConfig | None = None

    # ----------------------------------------------------------------- static context
    def attach(self, model: FactoryModel) -> None:
        """Take the static scenario data from a model and build the planner once."""
        cfg = model.config
        self.config = cfg
        self.tariff = model.tariff
        self.norms: Normalisers = scenario_normalisers(cfg)
        self.forecaster = make_forecaster(
            self.forecaster_name,
            model,
            history=load_task_log(self.task_log) if self.task_log else None,
            warmup_days=self.warmup_days,
            quantile=self.forecast_quantile,
        )
        self.duration_days = model.duration_min / 1440.0
        self.run_end_min = float(model.duration_min)
        #: The run's time-mean price: ``energy_cost_adjusted`` values the stored energy
        #: gained over the run at it, so a plan reaching the run's end does too.
        self.run_mean_price = float(
            np.mean([model.tariff.price(m) for m in range(1, model.duration_min + 1)])
        )
        self.mean_job_min, self.work_kw = job_profile(model)
        self.types = {v.unique_id: v.vtype for v in model.vehicles}
        self.port_power_kw = min(c.power_kw for c in model.chargers.values())
        if len(model.vehicles) >= HIERARCHICAL_MIN_VEHICLES:
            self.lengths = [float(self.period_min)] * self.periods
        self.planner = make_planner(
            len(model.vehicles),
            len(self.lengths),
            len(cfg.tariff.demand_charges),
            self.options,
            binary_periods=self.binary_periods,
            min_session_periods=self.min_session_periods,
        )

    # ----------------------------------------------------------------- planning
    def plan_input(self, state: TwinState) -> PlanInput:
        """Build the planning problem of the snapshot ``state``."""
        cfg = self.config
        nt, dt = self.periods, self.period_min
        now = state.time_min
        starts = [now + k * dt for k in range(nt)]
        steps = [int(math.floor(s)) + 1 for s in starts]
        price = [self.tariff.price(s) for s in steps]
        base = [self.tariff.base_load_kw(s) for s in steps]
        arrivals = self.forecaster.arrivals(now, nt, dt)
        # after the run's end nothing is charged, worked or billed
        running = np.array(starts) < self.run_end_min
        arrivals = np.where(running, arrivals, 0.0)
        n = len(state.vehicles)
        # the tasks waiting now need vehicles too: all of them now, none an interval on
        # (the binary periods are the first re-plan interval)
        fade = np.clip(1.0 - np.arange(nt) / self.binary_periods, 0.0, None)
        needed = arrivals * self.mean_job_min / dt + state.backlog * fade
        share = np.clip(needed / max(n, 1), 0.0, 1.0)
        chargers = [
            PlanCharger(
                c.charger_id, len(c.ports), self.port_power_kw, list(running & (not c.failed))
            )
            for c in state.chargers
        ]
        port_of = {
            vid: (c.charger_id, p)
            for c in state.chargers
            for p, vid in enumerate(c.ports)
            if vid is not None
        }
        vehicles = []
        for v in state.vehicles:
            vt = self.types[v.vehicle_id]
            plugged = v.state == "charging"
            if vt.chemistry == "lead-acid" and not plugged and v.soc >= cfg.charge_threshold:
                windows: list[tuple[float, float]] | None = []
            elif v.task_id is not None:
                windows = [(dt, nt * dt)]
            else:
                windows = None
            work_kw = (share * self.work_kw[vt.name] + (1 - share) * vt.idle_kw) * running
            vehicles.append(
                PlanVehicle(
                    vehicle_id=v.vehicle_id,
                    soc=v.soc,
                    capacity_kwh=v.capacity_kwh,
                    max_power_kw=min(vt.max_charge_power_kw, self.port_power_kw),
                    efficiency=vt.charging_efficiency,
                    min_soc=vt.min_soc,
                    reserve_soc=self.soc_reserve,
                    max_soc=vt.max_soc,
                    knee_soc=vt.cccv_knee_soc,
                    floor_fraction=vt.cccv_floor_fraction,
                    idle_kw=vt.idle_kw,
                    free_windows=windows,
                    work_kwh=list(work_kw * dt / 60.0),
                    plugged=plugged,
                    port=port_of.get(v.vehicle_id),
                )
            )
        demand = []
        for d, charge in enumerate(cfg.tariff.demand_charges):
            hours = [((s - 1) / 60.0) % 24.0 for s in steps]
            demand.append(
                PlanDemandCharge(
                    charge.rate_per_kw_month * self.duration_days / DAYS_PER_MONTH,
                    [charge.start_h <= h < charge.end_h for h in hours],
                    state.demand_peaks_kw[d] if d < len(state.demand_peaks_kw) else 0.0,
                )
            )
        c = cfg.controller
        hours = nt * dt / 60.0
        alpha_d = c.alpha_downtime * (1.0 + min(state.backlog / max(n, 1), BACKLOG_WEIGHT_CAP))
        # energy left at the horizon's end replaces energy bought in the following hours:
        # value it at their mean price (a kWh kept into an evening peak is worth more); past
        # the run's end, at the run's mean price, as energy_cost_adjusted does
        after = [now + nt * dt + k for k in range(int(nt * dt))]
        stored_price = float(
            np.mean(
                [
                    self.tariff.price(int(math.floor(s)) + 1)
                    if s < self.run_end_min
                    else self.run_mean_price
                    for s in after
                ]
            )
        )
        fine = PlanInput(
            period_min=dt,
            price_per_kwh=price,
            base_load_kw=base,
            vehicles=vehicles,
            chargers=chargers,
            grid_limit_kw=cfg.site.grid_limit_kw,
            needed_vehicles=list(needed),
            workers=[float(n)] * nt,
            demand_charges=demand,
            alpha_energy=c.alpha_energy,
            alpha_downtime=alpha_d,
            alpha_utilization=c.alpha_utilization,
            energy_norm=self.norms.energy_per_h * hours,
            downtime_norm=self.norms.downtime_per_h * hours,
            utilization_norm=self.norms.utilization_per_h * hours,
            stored_energy_price=stored_price,
        )
        # the model's periods: the fine ones, then blocks of the tail (move blocking)
        return block_periods(fine, self.lengths)

    def plan(
        self,
        state: TwinState,
        elapsed_periods: int = 1,
        relax_and_fix: bool = False,
        fleet: bool = False,
    ) -> Plan:
        """Solve the plan for ``state`` (the planner is built once and re-used).

        Args:
            state: The twin's snapshot.
            elapsed_periods: Periods since the previous plan (for the shifted fallback).
            relax_and_fix: Make every period integral, one re-plan interval at a time
                (:meth:`ChargingPlanner.solve_relax_and_fix`), for a whole-run plan. The
                hierarchical planner of large fleets solves its whole horizon at once.
            fleet: With ``relax_and_fix``: the fleet's plugged-in count per period is the
                integer, not each vehicle's decision (a plan for fleet-level dispatch).
        """
        start = time.perf_counter()
        data = self.plan_input(state)
        if relax_and_fix and type(self.planner) is ChargingPlanner:
            plan = self.planner.solve_relax_and_fix(data, fleet=fleet)
        else:
            plan = self.planner.solve(data, elapsed_periods=elapsed_periods)
        plan.solve_s = time.perf_counter() - start
        return plan


def job_profile(model: FactoryModel) -> tuple[float, dict[str, float]]:
    """Mean job duration (minutes) and mean working power per vehicle type (kW).

    A job is an empty drive from a random station to the pick-up, loading, a loaded drive to
    the drop-off and unloading; averaged over all ordered station pairs.
    """
    layout = model.layout
    cells = list(layout.station_cells.values())
    pairs = [(a, b) for a in cells for b in cells if a != b]
    mean_m = float(np.mean([layout.distance_m(a, b) for a, b in pairs])) if pairs else 0.0
    types = {v.vtype.name: v.vtype for v in model.vehicles}
    durations, power = [], {}
    for name, vt in types.items():
        drive = mean_m / vt.speed_mps / 60.0
        total = 2 * drive + 2 * vt.handling_min
        energy = drive * (vt.drive_empty_kw + vt.drive_loaded_kw) + 2 * vt.handling_min * (
            vt.handling_kw
        )
        durations.append(total)
        power[name] = energy / total if total else vt.idle_kw
    return float(np.mean(durations)), power
