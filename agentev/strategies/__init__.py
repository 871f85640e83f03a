"""Charging strategies, chosen by name from one registry.

Adding a strategy is one module with a :class:`~agentev.strategies.base.ChargingStrategy`
subclass and one entry in :data:`STRATEGIES`.
"""

import warnings

from agentev.strategies.base import ChargingStrategy
from agentev.strategies.fcfs import FirstComeFirstServed
from agentev.strategies.hindsight import HindsightPlan
from agentev.strategies.intelligent import Intelligent
from agentev.strategies.negotiation import Negotiation
from agentev.strategies.uncontrolled import Uncontrolled

STRATEGIES: dict[str, type[ChargingStrategy]] = {
    "uncontrolled": Uncontrolled,
    "fcfs": FirstComeFirstServed,
    "negotiation": Negotiation,
    "intelligent": Intelligent,
    "hindsight": HindsightPlan,
}
#: Old names still accepted for one release, with a DeprecationWarning: ``oracle`` was the
#: hindsight plan's name, though it is no optimum (``intelligent`` beats it on light).
DEPRECATED_STRATEGIES = {"oracle": "hindsight"}


def strategy_name(name: str) -> str:
    """The registered name for ``name`` (a deprecated alias warns and maps to its new name)."""
    new = DEPRECATED_STRATEGIES.get(name)
    if new is None:
        return name
    warnings.warn(
        f"strategy {name!r} is deprecated and will be removed in the next release; "
        f"use {new!r} (the executed hindsight plan, not an optimum)",
        DeprecationWarning,
        stacklevel=3,
    )
    return new


__all__ = [
    "DEPRECATED_STRATEGIES",
    "STRATEGIES",
    "ChargingStrategy",
    "FirstComeFirstServed",
    "HindsightPlan",
    "Intelligent",
    "Negotiation",
    "Uncontrolled",
    "strategy_name",
]
