"""Workstations: release transport jobs at their times and hold one vehicle at their dock."""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from mesa.discrete_space import FixedAgent

if TYPE_CHECKING:
    from agentev.agents.vehicle import Vehicle
    from agentev.model import FactoryModel
    from agentev.tasks import Task


class Workstation(FixedAgent):
    """A station with one loading point (dock).

    Args:
        model: The factory model.
        station_id: Station id from the scenario.
        tasks: Jobs picked up here, sorted by release time.

    Attributes:
        waiting: Released jobs not yet picked up here.
        dock: Vehicle at the dock, or None.
        dock_queue: Vehicles waiting for the dock.
    """

    def __init__(self, model: FactoryModel, station_id: str, tasks: list[Task]) -> None:
        super().__init__(model)
        self.station_id = station_id
        self.position = model.layout.station_cells[station_id]
        self.cell = model.layout.cell(self.position)
        self.waiting = 0
        self.dock: Vehicle | None = None
        self.dock_queue: deque[Vehicle] = deque()
        self._pending = deque(tasks)
        if self._pending:
            model.schedule_event(self._release_next, at=self._pending[0].release_min)

    def _release_next(self) -> None:
        task = self._pending.popleft()
        self.waiting += 1
        self.model.dispatcher.release(task)
        if self._pending:
            self.model.schedule_event(self._release_next, at=self._pending[0].release_min)

    def request_dock(self, vehicle: Vehicle) -> None:
        """A vehicle arrives: dock now if free, else wait in line."""
        if self.dock is None:
            self.dock = vehicle
            vehicle.dock_granted()
        else:
            self.dock_queue.append(vehicle)

    def release_dock(self, vehicle: Vehicle) -> None:
        """The docked vehicle leaves; the next in line docks."""
        if self.dock is vehicle:
            self.dock = None
            if self.dock_queue:
                self.dock = self.dock_queue.popleft()
                self.dock.dock_granted()
