"""Charging strategies, chosen by name from one registry.

Adding a strategy is one module with a :class:`~agentev.strategies.base.ChargingStrategy`
subclass and one entry in :data:`STRATEGIES`.
"""

from agentev.strategies.base import ChargingStrategy
from agentev.strategies.fcfs import FirstComeFirstServed
from agentev.strategies.uncontrolled import Uncontrolled

STRATEGIES: dict[str, type[ChargingStrategy]] = {
    "uncontrolled": Uncontrolled,
    "fcfs": FirstComeFirstServed,
}

__all__ = ["STRATEGIES", "ChargingStrategy", "FirstComeFirstServed", "Uncontrolled"]
