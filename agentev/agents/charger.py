"""Chargers: ports that serve one vehicle at a time, a local queue, failures and repairs.

A port left at time ``t`` can take the next vehicle from the next whole minute ``ceil(t)``
on (the changeover: the leaving vehicle clears the dock). This also means that within any
recorded minute a port serves at most one vehicle, which ``timeseries.csv`` makes checkable.
"""

from __future__ import annotations

import math
from collections import deque
from typing import TYPE_CHECKING

import numpy as np
from mesa.discrete_space import FixedAgent

from agentev.config import ChargerSpec

if TYPE_CHECKING:
    from agentev.agents.vehicle import Vehicle
    from agentev.model import FactoryModel


class Charger(FixedAgent):
    """A charger with one or more ports.

    Args:
        model: The factory model.
        spec: The charger's scenario entry.
        rng: The charger's own failure stream.

    Attributes:
        occupant: Vehicle plugged into each port, or None.
        reserved: Vehicle a port is held for (driving there), or None.
        ready_at: Time from which each port may take a vehicle (minutes).
        queue: Vehicles waiting at the charger, first come first served.
        heading: Vehicles driving to the charger.
        failed: True while the charger is broken.
    """

    def __init__(self, model: FactoryModel, spec: ChargerSpec, rng: np.random.Generator) -> None:
        super().__init__(model)
        self.spec = spec
        self.charger_id = spec.id
        self.position = model.layout.charger_cells[spec.id]
        self.cell = model.layout.cell(self.position)
        self.power_kw = spec.power_kw
        self.num_ports = spec.ports
        self.queue_slots = spec.queue_slots
        self.occupant: list[Vehicle | None] = [None] * spec.ports
        self.reserved: list[Vehicle | None] = [None] * spec.ports
        self.ready_at = [0.0] * spec.ports
        self.queue: deque[Vehicle] = deque()
        self.heading: set[Vehicle] = set()
        self.failed = False
        self.failures = 0
        self._rng = rng
        if spec.mtbf_h > 0:
            self._schedule_failure()

    # ----------------------------------------------------------------- queries
    def free_port(self) -> int | None:
        """Lowest-numbered port that can take a vehicle now, or None."""
        if self.failed:
            return None
        now = self.model.time
        for p in range(self.num_ports):
            if self.occupant[p] is None and self.reserved[p] is None and self.ready_at[p] <= now:
                return p
        return None

    @property
    def busy_ports(self) -> int:
        """Number of ports with a vehicle plugged in."""
        return sum(v is not None for v in self.occupant)

    def spare_places(self) -> int:
        """Free ports plus free queue slots, minus vehicles already heading here."""
        if self.failed:
            return 0
        free = sum(
            self.occupant[p] is None and self.reserved[p] is None for p in range(self.num_ports)
        )
        return free + self.queue_slots - len(self.queue) - len(self.heading)

    # ----------------------------------------------------------------- protocol
    def reserve(self, vehicle: Vehicle, port: int) -> None:
        """Hold ``port`` for ``vehicle`` while it drives here.

        Raises:
            ValueError: if the port is taken, reserved or the charger failed.
        """
        if self.failed or self.occupant[port] is not None or self.reserved[port] is not None:
            raise ValueError(f"charger {self.charger_id} port {port} is not free")
        self.reserved[port] = vehicle

    def arrive(self, vehicle: Vehicle) -> None:
        """A vehicle reaches the charger: plug into its port, a free port, or queue."""
        self.heading.discard(vehicle)
        if self.failed:
            self.model.strategy.request(vehicle)
            return
        for p in range(self.num_ports):
            if self.reserved[p] is vehicle:
                self.reserved[p] = None
                if self.ready_at[p] <= self.model.time and self.occupant[p] is None:
                    self._plug(vehicle, p)
                    return
        port = self.free_port()
        if port is not None and not self.queue:
            self._plug(vehicle, port)
        else:
            self.queue.append(vehicle)

    def _plug(self, vehicle: Vehicle, port: int) -> None:
        self.occupant[port] = vehicle
        vehicle.plug_in(self, port)

    def unplug(self, vehicle: Vehicle) -> None:
        """Called by a vehicle leaving its port; the port is ready at the next whole minute."""
        port = self.occupant.index(vehicle)
        self.occupant[port] = None
        now = self.model.time
        self.ready_at[port] = float(math.ceil(now))
        self.model.schedule_event(self._ports_ready, at=self.ready_at[port])

    def cancel(self, vehicle: Vehicle) -> None:
        """Forget a vehicle that no longer comes (heading, queued or holding a reservation)."""
        self.heading.discard(vehicle)
        if vehicle in self.queue:
            self.queue.remove(vehicle)
        for p in range(self.num_ports):
            if self.reserved[p] is vehicle:
                self.reserved[p] = None
                self.model.schedule_event(self._ports_ready, after=0.0)

    def _ports_ready(self) -> None:
        """Serve the local queue on ready ports, then tell the strategy room has freed."""
        port = self.free_port()
        while port is not None and self.queue:
            self._plug(self.queue.popleft(), port)
            port = self.free_port()
        self.model.strategy.port_freed(self)

    # ----------------------------------------------------------------- failures
    def _schedule_failure(self) -> None:
        after = self._rng.exponential(self.spec.mtbf_h * 60.0)
        self.model.schedule_event(self._fail, after=after)

    def _fail(self) -> None:
        self.failed = True
        self.failures += 1
        self.model.recorder.charger_event(self.charger_id, "failure")
        stranded = [v for v in self.occupant if v is not None]
        stranded += list(self.queue) + [v for v in self.reserved if v is not None]
        stranded += sorted(self.heading, key=lambda v: v.unique_id)
        stranded = list(dict.fromkeys(stranded))  # a reserved vehicle is also heading here
        self.queue.clear()
        self.heading.clear()
        self.reserved = [None] * self.num_ports
        for vehicle in stranded:
            if vehicle.charger is self:
                vehicle.unplug("charger_failure")
            else:
                # Heading here or queued: wait for a charger, a state charge commands accept.
                vehicle.wait_for_charger()
            vehicle.target_charger = None
            vehicle.request_charge()
        self.model.strategy.charger_failed(self)
        self.model.schedule_event(self._repair, after=self._rng.exponential(self.spec.mttr_h * 60))

    def _repair(self) -> None:
        self.failed = False
        self.model.recorder.charger_event(self.charger_id, "repair")
        self._schedule_failure()
        self._ports_ready()
