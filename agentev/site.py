"""The site connection: shares the power left under the grid limit among charging vehicles.

Each minute every plugged-in vehicle asks for its CC-CV power (capped by its port); if the sum
exceeds the headroom (grid limit minus base load), the headroom is shared by water-filling:
equal shares, with vehicles that need less than a share getting what they need. A vehicle that
plugs in mid-minute gets what is left of the headroom in that minute.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from agentev.tariff import Tariff

if TYPE_CHECKING:
    from agentev.agents.vehicle import Vehicle


class SitePower:
    """Tracks the charging power granted to each plugged-in vehicle (kW)."""

    def __init__(self, tariff: Tariff) -> None:
        self.tariff = tariff
        self.charging: list[Vehicle] = []

    def _headroom_now(self, now: float) -> float:
        return self.tariff.charging_headroom_kw(math.floor(now) + 1)

    def grant(self, vehicle: Vehicle, request_kw: float) -> float:
        """Grant a newly plugged-in vehicle up to ``request_kw`` for the rest of this minute."""
        used = sum(v.grid_kw for v in self.charging)
        self.charging.append(vehicle)
        return max(0.0, min(request_kw, self._headroom_now(vehicle.model.time) - used))

    def release(self, vehicle: Vehicle) -> None:
        """A vehicle unplugs; its power is shared again from the next minute."""
        self.charging.remove(vehicle)

    def reallocate(self, step: int) -> None:
        """Set every charging vehicle's power for the minute ``[step, step + 1)``."""
        if not self.charging:
            return
        requests = [v.charge_power_request_kw() for v in self.charging]
        grants = water_fill(requests, self.tariff.charging_headroom_kw(step + 1))
        for vehicle, kw in zip(self.charging, grants, strict=True):
            vehicle.grid_kw = kw
            vehicle.schedule_charge_end()


def water_fill(requests: list[float], capacity: float) -> list[float]:
    """Share ``capacity`` among ``requests``: equal shares, never more than asked."""
    if sum(requests) <= capacity:
        return list(requests)
    grants = [0.0] * len(requests)
    left = capacity
    order = sorted(range(len(requests)), key=lambda i: requests[i])
    for k, i in enumerate(order):
        share = left / (len(order) - k)
        grants[i] = min(requests[i], share)
        left -= grants[i]
    return grants
