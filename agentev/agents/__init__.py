"""The agents of the factory: vehicles, chargers, workstations and the twin controller."""

from agentev.agents.charger import Charger
from agentev.agents.controller import FleetCommands, TwinController, TwinState
from agentev.agents.vehicle import Vehicle, VehicleState
from agentev.agents.workstation import Workstation

__all__ = [
    "Charger",
    "FleetCommands",
    "TwinController",
    "TwinState",
    "Vehicle",
    "VehicleState",
    "Workstation",
]
