"""The interface every charging strategy implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agentev.agents.charger import Charger
    from agentev.agents.vehicle import Vehicle
    from agentev.model import FactoryModel


class ChargingStrategy(ABC):
    """Decides when vehicles charge and where, acting only through ``model.commands``.

    The model calls :meth:`needs_charge` whenever a vehicle becomes free (and every minute for
    free vehicles), :meth:`request` when a vehicle needs energy, and :meth:`port_freed` when a
    charger has a port ready that its own queue did not take.

    Args:
        model: The factory model.
    """

    name = "base"

    def __init__(self, model: FactoryModel) -> None:
        self.model = model
        self.commands = model.commands
        self.threshold = model.config.charge_threshold

    def needs_charge(self, vehicle: Vehicle) -> bool:
        """Threshold rule: below ``charge_threshold`` (lead-acid: only then may it start)."""
        return vehicle.battery.soc < self.threshold and vehicle.battery.may_start_charging(
            self.threshold
        )

    @abstractmethod
    def request(self, vehicle: Vehicle) -> None:
        """A vehicle needs a charge now."""

    def port_freed(self, charger: Charger) -> None:  # noqa: B027 (optional hook)
        """Room freed at ``charger``: a port is ready, or its queue moved up a place."""

    def on_step(self, t: int) -> None:  # noqa: B027 (optional hook)
        """Called every minute after the step at ``t`` closed the minute, before power is shared."""

    def charger_failed(self, charger: Charger) -> None:  # noqa: B027 (optional hook)
        """A charger failed (its vehicles have already asked again)."""

    def nearest(self, vehicle: Vehicle, chargers) -> Charger | None:
        """The charger closest to the vehicle by driving distance (ties: scenario order)."""
        layout = self.model.layout
        here = vehicle.position
        best, best_d = None, float("inf")
        for charger in chargers:
            d = layout.distance_m(here, charger.position)
            if d < best_d:
                best, best_d = charger, d
        return best
