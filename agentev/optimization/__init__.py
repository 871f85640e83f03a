"""Charging optimisation: the rolling-horizon MILP planner and the twin's optimiser."""

from agentev.optimization.controller import OptimizationController
from agentev.optimization.planner import (
    ChargingPlanner,
    Plan,
    PlanCharger,
    PlanDemandCharge,
    PlanInput,
    PlanVehicle,
    assign_ports,
    plan_charging,
)
from agentev.optimization.solvers import SolverOptions, SolverUnavailableError

__all__ = [
    "ChargingPlanner",
    "OptimizationController",
    "Plan",
    "PlanCharger",
    "PlanDemandCharge",
    "PlanInput",
    "PlanVehicle",
    "SolverOptions",
    "SolverUnavailableError",
    "assign_ports",
    "plan_charging",
]
