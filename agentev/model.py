"""FactoryModel: the factory floor, its fleet, chargers, workstations and twin controller.

One Mesa step is one minute (``model.time`` in minutes). State changes happen at their exact
times through ``schedule_event``; the step at ``t`` closes the minute ``[t - 1, t)`` in the run
log, shares the site's power for the next minute and lets free vehicles check their battery.

Randomness: the seed (``rng``) spawns independent streams with ``numpy.random.SeedSequence``
for task arrivals, initial states of charge, each charger's failures and dispatching
tie-breaks, so that strategies and fleet sizes compared under one seed see the same tasks
(common random numbers).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mesa
import numpy as np
from mesa import DataCollector

from agentev.agents.charger import Charger
from agentev.agents.controller import FleetCommands, TwinController
from agentev.agents.vehicle import FREE_STATES, Vehicle, VehicleState
from agentev.agents.workstation import Workstation
from agentev.config import ScenarioConfig
from agentev.layout import FactoryLayout
from agentev.recorder import Recorder
from agentev.scenario import DEFAULT_SCENARIO, apply_overrides, load_scenario
from agentev.site import SitePower
from agentev.strategies import STRATEGIES
from agentev.tariff import Tariff
from agentev.tasks import Dispatcher, generate_tasks


# Module-level DataCollector reporters (picklable, unlike lambdas). They run every minute, so
# they loop over the model's plain vehicle list rather than building AgentSet queries.
def mean_soc(model: FactoryModel) -> float:
    """Mean state of charge of the fleet."""
    return sum(v.battery.energy_kwh / v.battery.capacity_kwh for v in model.vehicles) / len(
        model.vehicles
    )


def vehicles_charging(model: FactoryModel) -> int:
    """Vehicles plugged in."""
    return sum(v.state is VehicleState.CHARGING for v in model.vehicles)


def vehicles_queued(model: FactoryModel) -> int:
    """Vehicles waiting for a port."""
    return sum(v.state is VehicleState.QUEUED for v in model.vehicles)


def task_backlog(model: FactoryModel) -> int:
    """Released jobs no vehicle has taken yet."""
    return len(model.dispatcher.backlog)


def tasks_completed(model: FactoryModel) -> int:
    """Jobs delivered so far."""
    return model.tasks_completed


def site_power_kw(model: FactoryModel) -> float:
    """Mean site power in the last minute (kW)."""
    return model.recorder.grid_rows[-1][3] if model.recorder.grid_rows else 0.0


def price_per_kwh(model: FactoryModel) -> float:
    """Energy price in the last minute (currency/kWh)."""
    return model.recorder.grid_rows[-1][1] if model.recorder.grid_rows else 0.0


MODEL_REPORTERS = {
    "mean_soc": mean_soc,
    "vehicles_charging": vehicles_charging,
    "vehicles_queued": vehicles_queued,
    "task_backlog": task_backlog,
    "tasks_completed": tasks_completed,
    "site_power_kw": site_power_kw,
    "price_per_kwh": price_per_kwh,
}


class FactoryModel(mesa.Model):
    """A digital twin of an industrial electric-vehicle fleet on a factory floor.

    A scenario (built-in name, file path or :class:`ScenarioConfig`) sets every parameter;
    explicit keywords override it (None keeps the scenario's value).

    Args:
        scenario: ``"light"`` (default), ``"heavy"``, ``"flexible"``, ``"continuous"``, a path
            to a TOML file, or a :class:`ScenarioConfig`.
        num_vehicles: Fleet size (the type mix is kept).
        num_chargers: Charger sites in use (the first ones of the layout).
        strategy: Charging strategy name (see ``agentev.strategies.STRATEGIES``).
        duration_h: Simulated time (hours).
        charge_threshold: State of charge below which threshold rules ask for a charge.
        grid_limit_kw: Site grid connection limit (kW).
        alpha_energy: Objective weight of energy cost.
        alpha_downtime: Objective weight of vehicle downtime.
        alpha_utilization: Objective weight of charger utilisation.
        prediction_horizon_h: Optimisation horizon (hours).
        optimization_interval_h: Controller interval (hours).
        period_min: Optimisation period length (minutes).
        solver: Optimisation solver name.
        forecaster: Task demand forecaster of the controller (``agentev.forecasting``:
            ``rate``, ``none``, ``naive``, ``random_forest``, ``gaussian_process``,
            ``ensemble``, ``lstm`` or ``perfect``).
        forecast_quantile: Robust planning: plan for this upper quantile of the learned
            forecast (e.g. 0.9); None: the scenario's (default: the mean).
        message_latency_s: Negotiation message latency (seconds).
        rng: Seed (int) or numpy Generator; the same seed gives the same run.
    """

    def __init__(
        self,
        scenario: str | Path | ScenarioConfig = DEFAULT_SCENARIO,
        *,
        num_vehicles: int | None = None,
        num_chargers: int | None = None,
        strategy: str | None = None,
        duration_h: float | None = None,
        charge_threshold: float | None = None,
        grid_limit_kw: float | None = None,
        alpha_energy: float | None = None,
        alpha_downtime: float | None = None,
        alpha_utilization: float | None = None,
        prediction_horizon_h: float | None = None,
        optimization_interval_h: float | None = None,
        period_min: float | None = None,
        solver: str | None = None,
        forecaster: str | None = None,
        forecast_quantile: float | None = None,
        message_latency_s: float | None = None,
        rng: Any = None,
    ) -> None:
        super().__init__(rng=rng)
        base = scenario if isinstance(scenario, ScenarioConfig) else load_scenario(scenario)
        cfg = apply_overrides(
            base,
            num_vehicles=num_vehicles,
            num_chargers=num_chargers,
            strategy=strategy,
            duration_h=duration_h,
            charge_threshold=charge_threshold,
            grid_limit_kw=grid_limit_kw,
            alpha_energy=alpha_energy,
            alpha_downtime=alpha_downtime,
            alpha_utilization=alpha_utilization,
            prediction_horizon_h=prediction_horizon_h,
            optimization_interval_h=optimization_interval_h,
            period_min=period_min,
            solver=solver,
            forecaster=forecaster,
            forecast_quantile=forecast_quantile,
            message_latency_s=message_latency_s,
        )
        self.config = cfg
        self.scenario_name = cfg.name
        self.seed = int(self._seed)
        self.duration_min = int(round(cfg.duration_h * 60))
        arrivals, initial, failures, ties = np.random.SeedSequence(self.seed).spawn(4)

        self.layout = FactoryLayout(cfg.layout, random=self.random)
        self.tariff = Tariff(cfg.tariff, cfg.site)
        self.power = SitePower(self.tariff)
        station_ids = [s.id for s in cfg.layout.stations]
        self.task_trace = generate_tasks(
            cfg.tasks, station_ids, self.duration_min, np.random.default_rng(arrivals)
        )
        self.tasks_completed = 0

        # Vehicles first, so their ids are 1..N in fleet order.
        types = cfg.vehicle_type_sequence()
        low, high = cfg.initial_soc_range
        socs = np.random.default_rng(initial).uniform(low, high, size=len(types))
        tie_breaks = np.random.default_rng(ties).permutation(len(types))
        self.vehicles: list[Vehicle] = [
            Vehicle(self, vt, float(soc), self.layout.parking[i], int(tie_breaks[i]))
            for i, (vt, soc) in enumerate(zip(types, socs, strict=True))
        ]
        self.vehicle_by_id = {v.unique_id: v for v in self.vehicles}
        streams = failures.spawn(len(cfg.layout.chargers))
        self.chargers: dict[str, Charger] = {
            spec.id: Charger(self, spec, np.random.default_rng(stream))
            for spec, stream in zip(cfg.layout.chargers[: cfg.num_chargers], streams, strict=False)
        }
        self.num_ports = sum(c.num_ports for c in self.chargers.values())
        self._charger_distance: dict[tuple[int, int], float] = {}

        self.commands = FleetCommands(self)
        self.dispatcher = Dispatcher(self)
        self.recorder = Recorder(self)
        self.strategy = STRATEGIES[cfg.strategy](self)
        by_station: dict[str, list] = {sid: [] for sid in station_ids}
        for task in self.task_trace:
            by_station[task.pickup].append(task)
        self.stations: dict[str, Workstation] = {
            sid: Workstation(self, sid, by_station[sid]) for sid in station_ids
        }
        self.controller = TwinController(self, cfg.controller.optimization_interval_h * 60.0)
        self.datacollector = DataCollector(model_reporters=MODEL_REPORTERS)
        self.datacollector.collect(self)

    # ----------------------------------------------------------------- queries
    def free_vehicles(self) -> list[Vehicle]:
        """Vehicles the dispatcher may give a job to (idle or driving to park)."""
        return [v for v in self.vehicles if v.state in FREE_STATES]

    def charger_distance_min(self, cell: tuple[int, int], speed_mps: float) -> float:
        """Driving time from ``cell`` to the nearest charger at ``speed_mps`` (minutes)."""
        d = self._charger_distance.get(cell)
        if d is None:
            d = min(self.layout.distance_m(cell, c.position) for c in self.chargers.values())
            self._charger_distance[cell] = d
        return d / speed_mps / 60.0

    # ----------------------------------------------------------------- dynamics
    def step(self) -> None:
        """Close the minute just ended, let the strategy act, share power, check free vehicles."""
        t = int(round(self.time))
        self.recorder.close_step(t)
        self.strategy.on_step(t)
        self.power.reallocate(t)
        needs_charge = self.strategy.needs_charge
        for vehicle in self.vehicles:
            if vehicle.state in FREE_STATES and needs_charge(vehicle):
                vehicle.request_charge()
        self.datacollector.collect(self)
        if t >= self.duration_min:
            self.running = False

    def run(self) -> None:
        """Run to the end of the scenario's duration."""
        if self.time < self.duration_min:
            self.run_until(self.duration_min)


class SimulationModel(FactoryModel):
    """The seed's entry point, ``SimulationModel(num_vehicles=10, simulation_time=24, ...)``.

    Other keywords as :class:`FactoryModel`.

    Args:
        num_vehicles: Fleet size.
        simulation_time: Simulated time (hours).
        random_seed: Seed.
        **kwargs: Any other :class:`FactoryModel` keyword.
    """

    def __init__(
        self,
        num_vehicles: int = 10,
        simulation_time: float = 24,
        random_seed: int = 42,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            num_vehicles=num_vehicles, duration_h=simulation_time, rng=random_seed, **kwargs
        )
