"""Vehicles: drive timed paths, carry tasks, drain and charge their battery exactly.

A vehicle's life is a chain of scheduled events (arrival at a dock, end of loading, end of a
charge); between events its consumption power is constant, and while plugged in its charging
power is constant within each minute. Before every change the battery is integrated up to the
event time, so the per-minute energies the recorder writes are exact.
"""

from __future__ import annotations

import math
from enum import StrEnum
from typing import TYPE_CHECKING

from mesa.discrete_space import CellAgent

from agentev.battery import Battery
from agentev.config import VehicleType

if TYPE_CHECKING:
    from agentev.agents.charger import Charger
    from agentev.model import FactoryModel
    from agentev.tasks import Task


class VehicleState(StrEnum):
    """What a vehicle is doing; the value is written to ``timeseries.csv``."""

    IDLE = "idle"
    TO_PARK = "to_park"
    TO_PICKUP = "to_pickup"
    WAIT_DOCK = "wait_dock"
    LOADING = "loading"
    TO_DROPOFF = "to_dropoff"
    UNLOADING = "unloading"
    TO_CHARGER = "to_charger"
    QUEUED = "queued"
    CHARGING = "charging"


#: States in which a vehicle is able to work (counts as available).
WORKING_STATES = frozenset(
    {
        VehicleState.IDLE,
        VehicleState.TO_PARK,
        VehicleState.TO_PICKUP,
        VehicleState.WAIT_DOCK,
        VehicleState.LOADING,
        VehicleState.TO_DROPOFF,
        VehicleState.UNLOADING,
    }
)
#: States in which the dispatcher may give a vehicle a job.
FREE_STATES = frozenset({VehicleState.IDLE, VehicleState.TO_PARK})
#: States of a vehicle busy with a task.
TASK_STATES = WORKING_STATES - FREE_STATES


class Vehicle(CellAgent):
    """An AGV, tugger or forklift with a battery.

    Args:
        model: The factory model.
        vtype: Vehicle type (battery, speeds, consumption powers).
        soc: Initial state of charge (fraction).
        home: Grid coordinate of its parking place.
        tie_break: Random priority used to break dispatching ties.
    """

    def __init__(
        self, model: FactoryModel, vtype: VehicleType, soc: float, home: tuple, tie_break: float
    ) -> None:
        super().__init__(model)
        self.vtype = vtype
        self.battery = Battery(vtype, soc)
        self.initial_energy_kwh = self.battery.energy_kwh
        self.home = home
        self.tie_break = tie_break
        self.state = VehicleState.IDLE
        self.task: Task | None = None
        self.loaded = False
        self.moving = False
        self.cell = model.layout.cell(home)
        self._pos = home
        self._path: tuple = ()
        self._depart = 0.0
        self._min_per_cell = model.layout.cell_size_m / vtype.speed_mps / 60.0
        self._travel_event = None
        self._timer_event = None
        self.consume_kw = vtype.idle_kw
        self.grid_kw = 0.0
        #: Grid-side power limit set by a charging command (kW); None: none.
        self.power_setpoint_kw: float | None = None
        self._last = 0.0
        # charging
        self.charger: Charger | None = None
        self.port: int | None = None
        self.target_charger: Charger | None = None
        self.charge_until = vtype.max_soc
        self.need_since: float | None = None
        self.drive_during_need_min = 0.0
        self.session: list | None = None
        # per-step accumulators, reset by the recorder
        self.step_grid_kwh = 0.0
        self.step_charged_kwh = 0.0
        self.step_consumed_kwh = 0.0
        self.step_port: tuple[str, int] | None = None

    # ----------------------------------------------------------------- energy
    def advance(self, now: float) -> None:
        """Integrate the battery up to ``now`` at the current powers."""
        dt = now - self._last
        if dt > 0.0:
            grid, charged, consumed = self.battery.integrate(self.grid_kw, self.consume_kw, dt)
            self.step_grid_kwh += grid
            self.step_charged_kwh += charged
            self.step_consumed_kwh += consumed
            if self.session is not None:
                self.session[0] += grid
                self.session[1] += charged
            self._last = now

    def _set_state(self, state: VehicleState, moving: bool = False) -> None:
        self.advance(self.model.time)
        self.state = state
        self.moving = moving
        vt = self.vtype
        if moving:
            self.consume_kw = vt.drive_loaded_kw if self.loaded else vt.drive_empty_kw
        elif state is VehicleState.LOADING or state is VehicleState.UNLOADING:
            self.consume_kw = vt.handling_kw
        else:
            self.consume_kw = vt.idle_kw

    @property
    def soc(self) -> float:
        """State of charge (fraction)."""
        return self.battery.soc

    @property
    def capacity_kwh(self) -> float:
        """Battery capacity (kWh)."""
        return self.battery.capacity_kwh

    @property
    def task_id(self) -> int | None:
        """Id of the task the vehicle is carrying out, if any."""
        return None if self.task is None else self.task.task_id

    @property
    def able_to_work(self) -> bool:
        """True unless the vehicle is heading to, waiting for or at a charger."""
        return self.state in WORKING_STATES

    # ----------------------------------------------------------------- travel
    @property
    def position(self) -> tuple[int, int]:
        """Grid coordinate of the vehicle now (along its path while driving)."""
        if self.moving:
            idx = int((self.model.time - self._depart) / self._min_per_cell)
            return self._path[min(idx, len(self._path) - 1)]
        return self._pos

    def update_cell(self) -> None:
        """Move the Mesa cell along the path (display only)."""
        xy = self.position
        if self.cell.coordinate != xy:
            self.move_to(self.model.layout.cell(xy))

    def _travel(self, target: tuple[int, int], state: VehicleState, on_arrival) -> None:
        now = self.model.time
        start = self.position
        self._stop_moving()
        self._set_state(state, moving=True)
        self._path = self.model.layout.path(start, target)
        self._depart = now
        minutes = (len(self._path) - 1) * self._min_per_cell
        self._travel_event = self.model.schedule_event(on_arrival, after=minutes)

    def _stop_moving(self) -> None:
        """Cancel a travel in progress, leaving the vehicle at its current cell."""
        if self._travel_event is not None:
            if self.moving:
                self._pos = self.position
                if self.need_since is not None:
                    self.drive_during_need_min += self.model.time - self._depart
            self._travel_event.cancel()
            self._travel_event = None
        self.moving = False

    def _arrive(self) -> None:
        self._pos = self._path[-1]
        if self.need_since is not None:
            self.drive_during_need_min += self.model.time - self._depart
        self._travel_event = None
        self.moving = False
        self.update_cell()

    def travel_minutes(self, start: tuple[int, int], target: tuple[int, int]) -> float:
        """Driving time between two cells (minutes)."""
        return self.model.layout.distance_m(start, target) / self.vtype.speed_mps / 60.0

    # ----------------------------------------------------------------- tasks
    def energy_after(self, task: Task) -> float:
        """Battery energy left after doing ``task`` and driving to the nearest charger (kWh)."""
        layout = self.model.layout
        vt = self.vtype
        pickup = layout.station_cells[task.pickup]
        dropoff = layout.station_cells[task.dropoff]
        empty_min = self.travel_minutes(self.position, pickup)
        empty_min += self.model.charger_distance_min(dropoff, vt.speed_mps)
        loaded_min = self.travel_minutes(pickup, dropoff)
        used = (
            empty_min * vt.drive_empty_kw
            + loaded_min * vt.drive_loaded_kw
            + 2.0 * vt.handling_min * vt.handling_kw
        ) / 60.0
        return self.battery.energy_kwh - used

    def assign(self, task: Task) -> None:
        """Take a job: drive to its pick-up station."""
        task.vehicle_id = self.unique_id
        self.task = task
        target = self.model.layout.station_cells[task.pickup]
        self._travel(target, VehicleState.TO_PICKUP, self._arrive_pickup)

    def _arrive_pickup(self) -> None:
        self._arrive()
        self._set_state(VehicleState.WAIT_DOCK)
        self.model.stations[self.task.pickup].request_dock(self)

    def dock_granted(self) -> None:
        """Called by a workstation when its dock is free for this vehicle."""
        if self.loaded:
            self._set_state(VehicleState.UNLOADING)
            done = self._unloading_done
        else:
            self.task.pickup_min = self.model.time
            self.model.stations[self.task.pickup].waiting -= 1
            self._set_state(VehicleState.LOADING)
            done = self._loading_done
        self._timer_event = self.model.schedule_event(done, after=self.vtype.handling_min)

    def _loading_done(self) -> None:
        self.advance(self.model.time)
        self.loaded = True
        self.model.stations[self.task.pickup].release_dock(self)
        target = self.model.layout.station_cells[self.task.dropoff]
        self._travel(target, VehicleState.TO_DROPOFF, self._arrive_dropoff)

    def _arrive_dropoff(self) -> None:
        self._arrive()
        self._set_state(VehicleState.WAIT_DOCK)
        self.model.stations[self.task.dropoff].request_dock(self)

    def _unloading_done(self) -> None:
        self.advance(self.model.time)
        self.loaded = False
        task = self.task
        task.delivery_min = self.model.time
        self.model.tasks_completed += 1
        self.task = None
        self._set_state(VehicleState.IDLE)
        self.model.stations[task.dropoff].release_dock(self)
        self.become_free()

    def become_free(self) -> None:
        """Look for charging need, then a waiting job, else drive to the parking place."""
        if self.model.strategy.needs_charge(self):
            self.request_charge()
            return
        task = self.model.dispatcher.next_task_for(self)
        if task is not None:
            self.assign(task)
        elif self.position != self.home:
            self._travel(self.home, VehicleState.TO_PARK, self._arrive_home)
        else:
            self._set_state(VehicleState.IDLE)

    def _arrive_home(self) -> None:
        self._arrive()
        self._set_state(VehicleState.IDLE if self.state is VehicleState.TO_PARK else self.state)

    # ----------------------------------------------------------------- charging
    def request_charge(self) -> None:
        """The vehicle needs energy: ask the charging strategy.

        A vehicle that was already waiting (its charger failed before it plugged in) keeps
        the time it first asked.
        """
        if self.need_since is None:
            self.need_since = self.model.time
            self.drive_during_need_min = 0.0
        self.model.strategy.request(self)

    def go_charge(self, charger: Charger, until_soc: float, power_kw: float | None = None) -> None:
        """Drive to ``charger`` and charge to ``until_soc`` (command interface).

        ``power_kw`` limits the charging power from the plug-in on (kW; None: no limit).
        """
        self.power_setpoint_kw = power_kw
        if self.need_since is None:
            self.need_since = self.model.time
            self.drive_during_need_min = 0.0
        self.charge_until = until_soc
        self.target_charger = charger
        charger.heading.add(self)
        self._travel(charger.position, VehicleState.TO_CHARGER, self._arrive_charger)

    def _arrive_charger(self) -> None:
        self._arrive()
        self._set_state(VehicleState.QUEUED)
        self.target_charger.arrive(self)

    def wait_for_charger(self) -> None:
        """No port for now: wait at the parking place until the strategy sends the vehicle."""
        self.target_charger = None
        if self.position != self.home:
            self._travel(self.home, VehicleState.QUEUED, self._arrive_home)
        else:
            self._stop_moving()
            self._set_state(VehicleState.QUEUED)

    def plug_in(self, charger: Charger, port: int) -> None:
        """Called by a charger: start charging on ``port``."""
        now = self.model.time
        self._set_state(VehicleState.CHARGING)
        self.charger, self.port = charger, port
        self.target_charger = None
        self.step_port = (charger.charger_id, port)
        # [grid_kwh, charged_kwh, id, charger, port, need, plug_in, drive_min]
        self.session = [0.0, 0.0, charger.charger_id, port, self.need_since, now]
        self.session.append(self.drive_during_need_min)
        self.grid_kw = self.model.power.grant(self, self.charge_power_request_kw())
        self.schedule_charge_end()

    def charge_power_request_kw(self) -> float:
        """Grid-side power the vehicle takes now: CC-CV envelope, port limit and setpoint."""
        kw = min(self.battery.power_limit_kw(), self.charger.power_kw)
        if self.power_setpoint_kw is not None:
            kw = min(kw, self.power_setpoint_kw)
        return kw

    def schedule_charge_end(self) -> None:
        """Schedule the end of the charge if the target is reached within this minute."""
        if self._timer_event is not None:
            self._timer_event.cancel()
            self._timer_event = None
        now = self.model.time
        minutes = self.battery.minutes_to_reach(self.charge_until, self.grid_kw, self.consume_kw)
        next_step = math.floor(now) + 1.0
        if now + minutes <= next_step:
            self._timer_event = self.model.schedule_event(self._charge_done, after=minutes)

    def _charge_done(self) -> None:
        self._timer_event = None
        self.unplug("target_reached")
        self.become_free()

    def unplug(self, reason: str) -> None:
        """Stop charging and leave the port."""
        self.advance(self.model.time)
        if self._timer_event is not None:
            self._timer_event.cancel()
            self._timer_event = None
        charger = self.charger
        self.model.power.release(self)
        self.grid_kw = 0.0
        self.power_setpoint_kw = None
        s = self.session
        now = self.model.time
        if now <= max(s[5], math.floor(now)):
            # Not plugged in for a positive time in the minute now open: not shown in it.
            self.step_port = None
        self.model.recorder.session(
            self.unique_id, s[2], s[3], s[4], s[5], self.model.time, s[6], s[0], s[1], reason
        )
        self.session = None
        self.charger, self.port = None, None
        self.need_since = None
        self._set_state(VehicleState.IDLE)
        charger.unplug(self)

    def cancel_charge(self) -> None:
        """Leave a charging request (heading to, or queued at, a charger) without charging."""
        if self.target_charger is not None:
            self.target_charger.cancel(self)
            self.target_charger = None
        self._stop_moving()
        self.need_since = None
        self.power_setpoint_kw = None
        self._set_state(VehicleState.IDLE)
