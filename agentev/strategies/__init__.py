"""Charging strategies, chosen by name from one registry.

Adding a strategy is one module with a :class:`~agentev.strategies.base.ChargingStrategy`
subclass and one entry in :data:`STRATEGIES`.
"""

from agentev.strategies.base import ChargingStrategy
from agentev.strategies.fcfs import FirstComeFirstServed
from agentev.strategies.intelligent import Intelligent
from agentev.strategies.negotiation import Negotiation
from agentev.strategies.oracle import Oracle
from agentev.strategies.uncontrolled import Uncontrolled

STRATEGIES: dict[str, type[ChargingStrategy]] = {
    "uncontrolled": Uncontrolled,
    "fcfs": FirstComeFirstServed,
    "negotiation": Negotiation,
    "intelligent": Intelligent,
    "oracle": Oracle,
}

__all__ = [
    "STRATEGIES",
    "ChargingStrategy",
    "FirstComeFirstServed",
    "Intelligent",
    "Negotiation",
    "Oracle",
    "Uncontrolled",
]
