"""agentev: a Mesa agent-based digital twin of an industrial electric-vehicle fleet."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("agentev")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

from agentev.agents import Charger, TwinController, TwinState, Vehicle, VehicleState, Workstation
from agentev.experiments import ExperimentalFramework
from agentev.model import FactoryModel, SimulationModel
from agentev.optimization import OptimizationController, plan_charging
from agentev.outputs import run_and_write, write_outputs
from agentev.scenario import ScenarioError, available_scenarios, load_scenario
from agentev.strategies import STRATEGIES

__all__ = [
    "STRATEGIES",
    "Charger",
    "ExperimentalFramework",
    "FactoryModel",
    "OptimizationController",
    "ScenarioError",
    "SimulationModel",
    "TwinController",
    "TwinState",
    "Vehicle",
    "VehicleState",
    "Workstation",
    "__version__",
    "available_scenarios",
    "load_scenario",
    "plan_charging",
    "run_and_write",
    "write_outputs",
]
