"""Transport tasks: the arrival process (drawn up front) and the dispatcher.

The whole task trace of a run is drawn before the simulation starts from the run's arrival
stream, so it depends only on the scenario's task section, its stations, the duration and the
seed: never on the fleet size or the charging strategy (common random numbers).

Arrival processes (rates in tasks per hour, piecewise constant per minute):

* ``shift``: the daily pattern of shifts, repeated every day; a Poisson process.
* ``flexible``: each simulated hour's rate is the pattern's rate times a log-normal factor
  with mean 1 and the scenario's ``flexible_sigma``, drawn per run: variable patterns.
* ``continuous``: as ``shift``; used with 24/7 patterns over several days.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from agentev.config import TaskConfig

if TYPE_CHECKING:
    from agentev.agents.vehicle import Vehicle
    from agentev.model import FactoryModel


@dataclass(slots=True)
class Task:
    """One transport job.

    Attributes:
        task_id: Id, in release order from 0.
        release_min: Time the job is released at its pick-up station (minutes).
        due_min: Time it should be delivered by (minutes).
        pickup: Pick-up station id.
        dropoff: Drop-off station id.
        vehicle_id: The vehicle that took it, or None.
        pickup_min: Time the vehicle docked at the pick-up station (minutes), or None.
        delivery_min: Time the unloading finished (minutes), or None.
    """

    task_id: int
    release_min: float
    due_min: float
    pickup: str
    dropoff: str
    vehicle_id: int | None = None
    pickup_min: float | None = None
    delivery_min: float | None = None


def rate_per_minute(config: TaskConfig, duration_min: int, rng: np.random.Generator) -> np.ndarray:
    """Arrival rate in each minute of the run (tasks per minute)."""
    minute_of_day = np.arange(1440) / 60.0
    daily = np.zeros(1440)
    for shift in config.shifts:
        daily += np.where(
            (minute_of_day >= shift.start_h) & (minute_of_day < shift.end_h), shift.rate_per_h, 0.0
        )
    rate = np.resize(daily, duration_min) / 60.0
    if config.process == "flexible":
        hours = -(-duration_min // 60)
        sigma = config.flexible_sigma
        factor = rng.lognormal(-0.5 * sigma**2, sigma, size=hours)
        rate = rate * np.repeat(factor, 60)[:duration_min]
    return rate


def generate_tasks(
    config: TaskConfig, stations: list[str], duration_min: int, rng: np.random.Generator
) -> list[Task]:
    """Draw the task trace of a run.

    Args:
        config: The task arrival process.
        stations: Station ids, in scenario order.
        duration_min: Length of the run (minutes).
        rng: The run's arrival stream.

    Returns:
        Tasks sorted by release time, ids from 0.
    """
    rate = rate_per_minute(config, duration_min, rng)
    counts = rng.poisson(rate)
    n = int(counts.sum())
    minutes = np.repeat(np.arange(duration_min), counts)
    release = np.sort(minutes + rng.random(n))
    ns = len(stations)
    pickup = rng.integers(0, ns, size=n)
    dropoff = (pickup + rng.integers(1, ns, size=n)) % ns
    due = release + config.due_window_min
    return [
        Task(i, float(release[i]), float(due[i]), stations[pickup[i]], stations[dropoff[i]])
        for i in range(n)
    ]


class Dispatcher:
    """Gives each released job to the nearest free vehicle that can do it safely.

    Ties in distance are broken by each vehicle's random priority, drawn once per run from
    the tie-break stream. A vehicle can do a job if, after driving to the pick-up, loading,
    driving loaded to the drop-off, unloading and driving on to the nearest charger, its state
    of charge stays at or above its ``min_soc``. Jobs nobody can take wait in a
    first-in-first-out backlog; a vehicle that becomes free takes the oldest job it can do.
    """

    def __init__(self, model: FactoryModel) -> None:
        self.model = model
        self.backlog: deque[Task] = deque()

    def release(self, task: Task) -> None:
        """A job appears at its pick-up station: assign it or put it in the backlog."""
        vehicle = self._nearest_free_vehicle(task)
        if vehicle is None:
            self.backlog.append(task)
        else:
            vehicle.assign(task)

    def _nearest_free_vehicle(self, task: Task) -> Vehicle | None:
        layout = self.model.layout
        target = layout.station_cells[task.pickup]
        field = layout.distance_field(target)
        ranked = sorted((field[v.position], v.tie_break, v) for v in self.model.free_vehicles())
        for _, _, vehicle in ranked:
            if self.can_do(vehicle, task):
                return vehicle
        return None

    def can_do(self, vehicle: Vehicle, task: Task) -> bool:
        """Whether ``vehicle`` can do ``task`` and still reach a charger above ``min_soc``."""
        return vehicle.energy_after(task) >= vehicle.battery.min_soc * vehicle.battery.capacity_kwh

    def next_task_for(self, vehicle: Vehicle) -> Task | None:
        """Remove and return the oldest backlog job ``vehicle`` can do, if any."""
        for task in self.backlog:
            if self.can_do(vehicle, task):
                self.backlog.remove(task)
                return task
        return None
