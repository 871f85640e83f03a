"""``fcfs``: one central first-come-first-served queue over all ports."""

from __future__ import annotations

from agentev.strategies.base import ChargingStrategy


class FirstComeFirstServed(ChargingStrategy):
    """Vehicles that need a charge join one central queue, ordered by the time they asked.

    Whenever a port anywhere is ready, the head of the queue gets the free port nearest to it,
    reserved while it drives there, and charges to ``max_soc``. Vehicles wait at their parking
    place meanwhile.
    """

    name = "fcfs"

    def __init__(self, model) -> None:
        super().__init__(model)
        self.queue: list = []

    def request(self, vehicle) -> None:
        """Join the central queue (by time of need) and assign ports if any are free."""
        if vehicle not in self.queue:
            self.queue.append(vehicle)
            self.queue.sort(key=lambda v: (v.need_since, v.unique_id))
        self._assign()
        if vehicle in self.queue:
            vehicle.wait_for_charger()

    def port_freed(self, charger) -> None:
        """Give ready ports to the head of the queue."""
        self._assign()

    def _assign(self) -> None:
        chargers = self.model.chargers.values()
        while self.queue:
            free = [c for c in chargers if c.free_port() is not None]
            if not free:
                return
            vehicle = self.queue.pop(0)
            charger = self.nearest(vehicle, free)
            self.commands.charge(
                vehicle.unique_id,
                charger.charger_id,
                vehicle.battery.max_soc,
                port=charger.free_port(),
            )
