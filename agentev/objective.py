r"""The seed's weighted objective, with fixed per-scenario normalisers.

.. math::

    J = \alpha_E \frac{C_{adj} + C_{dem}}{N_E H}
      + \alpha_D \frac{S}{N_D H}
      + \alpha_U \frac{n_{sess} + h_{occ}}{N_U H}

with :math:`C_{adj}` the adjusted energy cost, :math:`C_{dem}` the demand charge, :math:`S`
the service shortfall (vehicle-h), :math:`n_{sess}` the charging sessions and
:math:`h_{occ}` the port-hours occupied by plugged-in vehicles of a run of :math:`H` hours.
The normalisers depend only on the scenario (never on a run), so the weights mean what they
say:

* :math:`N_E` = mean price x fleet capacity / 24 h: the cost of one full charge of the fleet
  per day, per hour (currency/h);
* :math:`N_D` = 0.1 x fleet size: a tenth of the fleet missing, per hour (vehicle-h/h);
* :math:`N_U` = the number of charger ports: every port occupied (or one session per port
  per hour), per hour.

The planner minimises the same terms over its horizon (:mod:`agentev.optimization.planner`).
"""

from __future__ import annotations

from dataclasses import dataclass

from agentev.config import ScenarioConfig


@dataclass(frozen=True)
class Normalisers:
    """Scale of each objective term per simulated hour."""

    energy_per_h: float
    downtime_per_h: float
    utilization_per_h: float


def scenario_normalisers(cfg: ScenarioConfig) -> Normalisers:
    """The fixed normalisers of a scenario (see the module docstring)."""
    prices = cfg.tariff.energy_price_per_kwh
    mean_price = sum(prices) / len(prices)
    capacity = sum(vt.capacity_kwh for vt in cfg.vehicle_type_sequence())
    n = cfg.num_vehicles
    ports = sum(c.ports for c in cfg.layout.chargers[: cfg.num_chargers])
    return Normalisers(mean_price * capacity / 24.0, 0.1 * n, float(ports))


def weighted_objective(
    values: dict[str, float],
    hours: float,
    norms: Normalisers,
    alpha_energy: float,
    alpha_downtime: float,
    alpha_utilization: float,
) -> float:
    """:math:`J` of a run from its metric values (see the module docstring)."""
    if hours <= 0:
        return 0.0
    energy = (values["energy_cost_adjusted"] + values["demand_charge"]) / (
        norms.energy_per_h * hours
    )
    downtime = values["service_shortfall_vehicle_h"] / (norms.downtime_per_h * hours)
    utilization = (values["charging_sessions"] + values["occupied_port_h"]) / (
        norms.utilization_per_h * hours
    )
    return alpha_energy * energy + alpha_downtime * downtime + alpha_utilization * utilization
