"""The twin controller: sees the fleet through a snapshot, acts through one command interface.

:class:`TwinState` is what the controller (and later the optimiser and the telemetry feed) may
see: per vehicle its state of charge, state, position, task and booking; per charger its ports
and status. :class:`FleetCommands` is the only way to act on the fleet: ``charge`` and
``release``. In the core model the controller observes on a recurring schedule and records;
forecasting and optimisation build on it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from mesa import Agent
from mesa.time import Schedule

from agentev.agents.vehicle import FREE_STATES, VehicleState

if TYPE_CHECKING:
    from agentev.model import FactoryModel


class CommandError(ValueError):
    """A command names an unknown vehicle or charger, or cannot be carried out now."""


@dataclass(frozen=True, slots=True)
class VehicleView:
    """What the twin knows of one vehicle."""

    vehicle_id: int
    vehicle_type: str
    soc: float
    capacity_kwh: float
    state: str
    position: tuple[int, int]
    task_id: int | None
    booking: str | None


@dataclass(frozen=True, slots=True)
class ChargerView:
    """What the twin knows of one charger: who is on each port, and whether it works."""

    charger_id: str
    position: tuple[int, int]
    ports: tuple[int | None, ...]
    reserved: tuple[int | None, ...]
    queue: tuple[int, ...]
    failed: bool


@dataclass(frozen=True, slots=True)
class TwinState:
    """A snapshot of the fleet at ``time_min``."""

    time_min: float
    vehicles: tuple[VehicleView, ...]
    chargers: tuple[ChargerView, ...]
    backlog: int
    demand_peaks_kw: tuple[float, ...] = ()

    @classmethod
    def observe(cls, model: FactoryModel) -> TwinState:
        """Take a snapshot of the model now."""
        vehicles = tuple(
            VehicleView(
                v.unique_id,
                v.vtype.name,
                v.soc,
                v.capacity_kwh,
                v.state.value,
                v.position,
                v.task_id,
                (v.charger or v.target_charger).charger_id
                if (v.charger or v.target_charger)
                else None,
            )
            for v in model.vehicles
        )
        chargers = tuple(
            ChargerView(
                c.charger_id,
                c.position,
                tuple(None if v is None else v.unique_id for v in c.occupant),
                tuple(None if v is None else v.unique_id for v in c.reserved),
                tuple(v.unique_id for v in c.queue),
                c.failed,
            )
            for c in model.chargers.values()
        )
        return cls(
            model.time,
            vehicles,
            chargers,
            len(model.dispatcher.backlog),
            demand_peaks(model),
        )


def demand_peaks(model: FactoryModel) -> tuple[float, ...]:
    """Highest 15-minute mean site power so far in each demand charge's window (kW)."""
    rows = model.recorder.grid_rows
    return window_peaks([r[3] for r in rows], model.config.tariff.demand_charges)


def window_peaks(site_kw, demand_charges) -> tuple[float, ...]:
    """Highest mean of each completed quarter hour of ``site_kw`` in each charge's window.

    Args:
        site_kw: Site power per minute from minute 0 on (kW).
        demand_charges: The tariff's demand charges (their ``start_h`` / ``end_h`` windows).

    Returns:
        One peak per charge (kW); 0 where no completed quarter hour falls in its window.
    """
    from agentev.tariff import DEMAND_INTERVAL_MIN, quarter_hour_means

    full = len(site_kw) - len(site_kw) % DEMAND_INTERVAL_MIN  # completed quarter hours only
    if full == 0:
        return tuple(0.0 for _ in demand_charges)
    means = quarter_hour_means(np.asarray(site_kw[:full], dtype=float))
    hours = (np.arange(len(means)) * DEMAND_INTERVAL_MIN / 60.0) % 24.0
    out = []
    for charge in demand_charges:
        inside = (hours >= charge.start_h) & (hours < charge.end_h)
        out.append(float(means[inside].max()) if inside.any() else 0.0)
    return tuple(out)


class FleetCommands:
    """The one interface through which strategies and the controller act on the fleet."""

    def __init__(self, model: FactoryModel) -> None:
        self.model = model
        self.issued = 0

    def _vehicle(self, vehicle_id: int):
        vehicle = self.model.vehicle_by_id.get(vehicle_id)
        if vehicle is None:
            raise CommandError(
                f"vehicle_id = {vehicle_id!r}: unknown vehicle; allowed: "
                f"{min(self.model.vehicle_by_id)}..{max(self.model.vehicle_by_id)}"
            )
        return vehicle

    def charge(
        self,
        vehicle_id: int,
        charger_id: str,
        until_soc: float,
        port: int | None = None,
        power_kw: float | None = None,
    ) -> None:
        """Send a vehicle to charge at a charger until ``until_soc``.

        Args:
            vehicle_id: The vehicle.
            charger_id: The charger to use.
            until_soc: State of charge at which the charge ends (fraction).
            port: Port to reserve while the vehicle drives there; None to plug into any free
                port on arrival or queue there.
            power_kw: Grid-side power limit from the plug-in on (kW); None: none. Later
                changes go through :meth:`set_power`.

        Raises:
            CommandError: unknown ids, a failed charger, a vehicle busy with a task, or a
                target outside the vehicle's state-of-charge limits.
        """
        vehicle = self._vehicle(vehicle_id)
        charger = self.model.chargers.get(charger_id)
        if charger is None:
            raise CommandError(
                f"charger_id = {charger_id!r}: unknown charger; allowed: "
                f"{', '.join(self.model.chargers)}"
            )
        if charger.failed:
            raise CommandError(f"charger_id = {charger_id!r}: the charger is out of order")
        if vehicle.state not in FREE_STATES and vehicle.state is not VehicleState.QUEUED:
            raise CommandError(
                f"vehicle_id = {vehicle_id}: state {vehicle.state.value!r} cannot take a charge "
                "command; allowed in idle, to_park or queued"
            )
        battery = vehicle.battery
        if not battery.min_soc <= until_soc <= battery.max_soc:
            raise CommandError(
                f"until_soc = {until_soc!r}: must be within [{battery.min_soc}, {battery.max_soc}]"
            )
        if power_kw is not None:
            self._check_power(vehicle, power_kw)
        if port is not None:
            charger.reserve(vehicle, port)
        self.issued += 1
        vehicle.go_charge(charger, until_soc, power_kw)

    def set_power(self, vehicle_id: int, power_kw: float | None) -> None:
        """Limit a charging vehicle's grid-side power from the next minute on (smart charging).

        Args:
            vehicle_id: The vehicle; the limit lasts until it unplugs.
            power_kw: The limit (kW, at least 0); None lifts it. The CC-CV envelope, the port
                and the site limit still apply below it.

        Raises:
            CommandError: unknown vehicle, a vehicle not charging, a lead-acid vehicle (its
                charger follows its own profile) or a negative limit.
        """
        vehicle = self._vehicle(vehicle_id)
        if vehicle.state is not VehicleState.CHARGING:
            raise CommandError(
                f"vehicle_id = {vehicle_id}: state {vehicle.state.value!r}; a power setpoint "
                "needs a charging vehicle"
            )
        if power_kw is not None:
            self._check_power(vehicle, power_kw)
        self.issued += 1
        vehicle.power_setpoint_kw = power_kw

    @staticmethod
    def _check_power(vehicle, power_kw: float) -> None:
        if vehicle.battery.lead_acid:
            raise CommandError(
                f"vehicle_id = {vehicle.unique_id}: a lead-acid battery charges on its "
                "charger's profile; no power setpoint"
            )
        if not (power_kw >= 0.0 and math.isfinite(power_kw)):
            raise CommandError(f"power_kw = {power_kw!r}: must be a finite number >= 0 or None")

    def release(self, vehicle_id: int) -> None:
        """End a vehicle's charge or charging request; it becomes free for work.

        Raises:
            CommandError: if the vehicle is unknown, or is a lead-acid vehicle mid-charge.
        """
        vehicle = self._vehicle(vehicle_id)
        if vehicle.state is VehicleState.CHARGING and vehicle.battery.lead_acid:
            if vehicle.soc < vehicle.charge_until:
                raise CommandError(
                    f"vehicle_id = {vehicle_id}: a lead-acid battery charges to its target "
                    f"({vehicle.charge_until}) once started; release allowed only at the target"
                )
        self.issued += 1
        if vehicle.state is VehicleState.CHARGING:
            vehicle.unplug("released")
            vehicle.become_free()
        elif vehicle.state in (VehicleState.TO_CHARGER, VehicleState.QUEUED):
            vehicle.cancel_charge()
            vehicle.become_free()


class TwinController(Agent):
    """The central twin controller.

    Every ``optimization_interval_h`` it observes a :class:`TwinState` and records it; with a
    planning strategy (``intelligent``, ``hindsight``) it then has the strategy re-plan.
    """

    def __init__(self, model: FactoryModel, interval_min: float) -> None:
        super().__init__(model)
        self.interval_min = interval_min
        self.observations: list[tuple[float, float, int, int, int]] = []
        model.schedule_recurring(self.control, Schedule(interval=interval_min, start=0.0))

    def control(self) -> None:
        """Observe the fleet and record a summary (time, mean SoC, charging, queued, backlog)."""
        state = TwinState.observe(self.model)
        socs = [v.soc for v in state.vehicles]
        self.observations.append(
            (
                state.time_min,
                sum(socs) / len(socs),
                sum(v.state == "charging" for v in state.vehicles),
                sum(v.state == "queued" for v in state.vehicles),
                state.backlog,
            )
        )
        replan = getattr(self.model.strategy, "replan", None)
        if replan is not None:
            replan("scheduled")
