"""``uncontrolled``: go to the nearest charger below the threshold and charge to full."""

from __future__ import annotations

from collections import deque

from agentev.strategies.base import ChargingStrategy


class Uncontrolled(ChargingStrategy):
    """Threshold rule with the nearest charger and a local queue.

    Each vehicle drives to the nearest working charger with a free port or queue slot,
    waits in line there if every port is busy, and charges to ``max_soc``. If every charger
    is full, it waits at its parking place and tries again when a port frees.
    """

    name = "uncontrolled"

    def __init__(self, model) -> None:
        super().__init__(model)
        self.waiting: deque = deque()

    def request(self, vehicle) -> None:
        """Send the vehicle to the nearest charger with room, or make it wait."""
        chargers = [c for c in self.model.chargers.values() if c.spare_places() > 0]
        charger = self.nearest(vehicle, chargers)
        if charger is None:
            if vehicle not in self.waiting:
                self.waiting.append(vehicle)
            vehicle.wait_for_charger()
        else:
            self.commands.charge(vehicle.unique_id, charger.charger_id, vehicle.battery.max_soc)

    def port_freed(self, charger) -> None:
        """Send waiting vehicles, longest-waiting first, while some charger has room."""
        chargers = self.model.chargers.values()
        while self.waiting and any(c.spare_places() > 0 for c in chargers):
            self.request(self.waiting.popleft())
