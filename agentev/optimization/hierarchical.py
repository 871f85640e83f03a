r"""Hierarchical decomposition of the charging plan for large fleets.

The per-vehicle MILP (:mod:`agentev.optimization.planner`) has one binary per vehicle and
period; for hundreds of vehicles it no longer solves within a re-plan interval. The
decomposition splits it in two:

1. **How many charge** (a small MILP, one integer per period): the fleet as one aggregate
   battery, :math:`n_t \in \{0..N^{port}_t\}` vehicles plugged in, grid energy
   :math:`G_t \le n_t \bar P \Delta` and within the site limit, aggregate energy
   :math:`E_t = E_{t-1} + \eta G_t - W_t` (the fleet's forecast use), bounded by the fleet's
   ``min_soc``/``max_soc`` energies (a soft lower bound), enough charged energy by each
   period for the vehicles that would otherwise fall below ``min_soc`` (soft), vehicles able
   to charge
   :math:`n_t \le A_t` (free in period :math:`t`), session starts
   :math:`s_t \ge n_t - n_{t-1}`, the service shortfall and the demand charge as in the full
   model, and the same weighted objective with the stored-energy value.
2. **Which vehicles, at what power** (a greedy assignment,
   :func:`~agentev.optimization.planner.assign_counts`): period by period, vehicles
   already plugged in stay while the first stage keeps enough places and they are below the
   CC-CV knee;
   the remaining places go to free vehicles with the least energy. A vehicle's ``required``
   energies are not bounds here (only the full model guarantees them): the greedy stage
   serves the neediest first. Each gets the power its
   CC-CV cuts allow, scaled down to the first stage's grid energy and the site limit; the
   vehicle energies follow the same dynamics as the full model. Ports are then assigned by
   :func:`~agentev.optimization.planner.assign_ports`.

The result is a :class:`~agentev.optimization.planner.Plan` like the full model's, so the
controller and strategies do not know which planner made it.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pyomo.environ as pyo

from agentev.optimization.planner import (
    RESERVE_PENALTY,
    SOC_SLACK_PENALTY,
    WEAR_PER_KWH,
    ChargingPlanner,
    Plan,
    PlanInput,
    _windows_to_periods,
    assign_counts,
    assign_ports,
)
from agentev.optimization.solvers import SolverOptions

log = logging.getLogger(__name__)

#: Fleets at least this large are planned hierarchically by the controller.
HIERARCHICAL_MIN_VEHICLES = 60


class HierarchicalPlanner(ChargingPlanner):
    """Two-stage planner with the interface of :class:`ChargingPlanner` (see module docs)."""

    def _static_key(self, data: PlanInput) -> tuple:
        # every fleet aggregate fits the same model: build once
        return ()

    def _build(self, data: PlanInput) -> pyo.ConcreteModel:
        m = pyo.ConcreteModel(name="charging_plan_aggregate")
        m.T = pyo.RangeSet(0, self.periods - 1)
        m.D = pyo.Set(initialize=list(range(self.num_demand_charges)))
        mp = {"mutable": True}
        m.dt_h = pyo.Param(initialize=0.25, **mp)
        m.e0 = pyo.Param(initialize=0.0, **mp)
        m.e_lo = pyo.Param(initialize=0.0, **mp)
        m.e_hi = pyo.Param(initialize=1.0, **mp)
        m.eff = pyo.Param(initialize=0.92, **mp)
        m.pmax = pyo.Param(initialize=3.3, **mp)
        m.lam = pyo.Param(initialize=0.0, **mp)
        m.n0 = pyo.Param(initialize=0.0, **mp)
        m.able = pyo.Param(m.T, initialize=0.0, **mp)
        m.deficit = pyo.Param(m.T, initialize=0.0, **mp)
        m.work = pyo.Param(m.T, initialize=0.0, **mp)
        m.price = pyo.Param(m.T, initialize=0.0, **mp)
        m.base = pyo.Param(m.T, initialize=0.0, **mp)
        m.site_kwh = pyo.Param(m.T, initialize=1e6, **mp)
        m.ports = pyo.Param(m.T, initialize=0.0, **mp)
        m.needed = pyo.Param(m.T, initialize=0.0, **mp)
        m.workers = pyo.Param(m.T, initialize=0.0, **mp)
        m.rate = pyo.Param(m.D, initialize=0.0, **mp)
        m.peak0 = pyo.Param(m.D, initialize=0.0, **mp)
        m.inwin = pyo.Param(m.D, m.T, initialize=0.0, **mp)
        m.w_e = pyo.Param(initialize=1.0, **mp)
        m.w_d = pyo.Param(initialize=1.0, **mp)
        m.w_u = pyo.Param(initialize=1.0, **mp)

        m.n = pyo.Var(m.T, domain=pyo.NonNegativeIntegers)
        m.G = pyo.Var(m.T, domain=pyo.NonNegativeReals)
        m.E = pyo.Var(m.T, domain=pyo.Reals)
        m.s = pyo.Var(m.T, domain=pyo.NonNegativeReals)
        m.u = pyo.Var(m.T, domain=pyo.NonNegativeReals)
        m.u_needy = pyo.Var(m.T, domain=pyo.NonNegativeReals)
        m.q = pyo.Var(m.T, domain=pyo.NonNegativeReals)
        m.P = pyo.Var(m.D, domain=pyo.NonNegativeReals)

        def prev_e(m, t):
            return m.e0 if t == 0 else m.E[t - 1]

        def prev_n(m, t):
            return m.n0 if t == 0 else m.n[t - 1]

        m.port_count = pyo.Constraint(m.T, rule=lambda m, t: m.n[t] <= m.ports[t])
        m.able_count = pyo.Constraint(m.T, rule=lambda m, t: m.n[t] <= m.able[t])
        m.power = pyo.Constraint(m.T, rule=lambda m, t: m.G[t] <= m.pmax * m.dt_h * m.n[t])
        m.site_limit = pyo.Constraint(m.T, rule=lambda m, t: m.G[t] <= m.site_kwh[t])
        m.dynamics = pyo.Constraint(
            m.T,
            rule=lambda m, t: m.E[t] == prev_e(m, t) + m.eff * m.G[t] - m.work[t],
        )
        m.soc_max = pyo.Constraint(m.T, rule=lambda m, t: m.E[t] <= m.e_hi)
        m.soc_min = pyo.Constraint(m.T, rule=lambda m, t: m.E[t] + m.u[t] >= m.e_lo)
        m.needy = pyo.Constraint(
            m.T,
            rule=lambda m, t: (
                sum(m.eff * m.G[k] for k in range(t + 1)) + m.u_needy[t] >= m.deficit[t]
            ),
        )
        m.session = pyo.Constraint(m.T, rule=lambda m, t: m.s[t] >= m.n[t] - prev_n(m, t))
        m.shortfall = pyo.Constraint(
            m.T, rule=lambda m, t: m.q[t] >= m.needed[t] - m.workers[t] + m.n[t]
        )
        m.peak_floor = pyo.Constraint(m.D, rule=lambda m, d: m.P[d] >= m.peak0[d])
        m.peak = pyo.Constraint(
            m.D,
            m.T,
            rule=lambda m, d, t: m.P[d] >= m.inwin[d, t] * (m.base[t] + m.G[t] / m.dt_h),
        )
        last = self.periods - 1
        m.energy_cost = pyo.Expression(expr=sum(m.price[t] * m.G[t] for t in m.T))
        m.demand_increment = pyo.Expression(
            expr=sum(m.rate[d] * (m.P[d] - m.peak0[d]) for d in m.D)
        )
        m.stored_value = pyo.Expression(expr=m.lam * (m.E[last] - m.e0))
        m.stored_port_h = pyo.Expression(expr=(m.E[last] - m.e0) / (m.eff * m.pmax))
        m.shortfall_vh = pyo.Expression(expr=sum(m.q[t] * m.dt_h for t in m.T))
        m.sessions = pyo.Expression(expr=sum(m.s[t] for t in m.T))
        m.occupied_port_h = pyo.Expression(expr=sum(m.n[t] * m.dt_h for t in m.T))
        m.soc_slack = pyo.Expression(expr=sum(m.u[t] + m.u_needy[t] for t in m.T))
        m.objective = pyo.Objective(
            expr=m.w_e * (m.energy_cost + m.demand_increment - m.stored_value)
            + m.w_d * m.shortfall_vh
            + m.w_u * (m.sessions + m.occupied_port_h - m.stored_port_h)
            + WEAR_PER_KWH * sum(m.G[t] for t in m.T)
            + SOC_SLACK_PENALTY * m.soc_slack,
            sense=pyo.minimize,
        )
        return m

    def update(self, data: PlanInput) -> None:
        """Load the aggregate of a problem into the first-stage model."""
        self._check_shape(data)
        if not np.allclose(data.lengths_min(), data.period_min):
            raise ValueError(
                f"period_lengths_min = {list(data.period_lengths_min)}: the hierarchical "
                f"planner needs periods of one length (period_min = {data.period_min})"
            )
        self._ensure_model(data)
        m = self.model
        nt, dt = self.periods, data.period_min
        dt_h = dt / 60.0
        vs = data.vehicles
        self._free = np.array([_windows_to_periods(v.free_windows, [dt] * nt) for v in vs])
        self._work = np.array(
            [[v.idle_kw * dt_h] * nt if v.work_kwh is None else list(v.work_kwh) for v in vs]
        )
        m.e0.set_value(sum(v.soc * v.capacity_kwh for v in vs))
        m.e_lo.set_value(sum(v.min_soc * v.capacity_kwh for v in vs))
        m.e_hi.set_value(sum(v.max_soc * v.capacity_kwh for v in vs))
        m.eff.set_value(float(np.mean([v.efficiency for v in vs])))
        m.pmax.set_value(float(np.mean([v.max_power_kw for v in vs])))
        m.n0.set_value(float(sum(v.plugged for v in vs)))
        m.lam.set_value(self._load_site(data) / m.eff.value)
        # Energy the vehicles that would fall below min_soc without charging need by each
        # period's end: the aggregate must deliver it (to the neediest, in the second stage).
        start = np.array([v.soc * v.capacity_kwh for v in vs])
        floor = np.array([v.min_soc * v.capacity_kwh for v in vs])
        projected = start[:, None] - np.cumsum(self._work, axis=1)
        deficit = np.clip(floor[:, None] - projected, 0.0, None).sum(axis=0)
        for t in range(nt):
            m.able[t].set_value(float(self._free[:, t].sum()))
            m.deficit[t].set_value(float(deficit[t]))
            m.work[t].set_value(float(self._work[:, t].sum()))

    def _extract(self, data: PlanInput, status: str) -> Plan:
        """Second stage: which vehicles charge in each period, and how much."""
        m = self.model
        counts = [int(round(pyo.value(m.n[t]))) for t in range(self.periods)]
        budget = [max(0.0, pyo.value(m.G[t])) for t in range(self.periods)]
        cuts = [self._cuts(v, data.period_min) for v in data.vehicles]
        x, g, e = assign_counts(data, counts, budget, self._free, self._work, cuts)
        ports = assign_ports(x, data.chargers, [v.port for v in data.vehicles])
        return Plan(status, x, g, e, ports, plan_terms(data, x, g, e))


def plan_terms(data: PlanInput, x: np.ndarray, g: np.ndarray, e: np.ndarray) -> dict:
    """The full model's objective terms, evaluated on a plan's arrays."""
    nv, nt = x.shape
    dt_h = data.period_min / 60.0
    vs = data.vehicles
    price = np.asarray(data.price_per_kwh, dtype=float)
    base = np.asarray(data.base_load_kw, dtype=float)
    stored = float(price.mean()) if data.stored_energy_price is None else data.stored_energy_price
    e0 = np.array([v.soc * v.capacity_kwh for v in vs])
    eff = np.array([v.efficiency for v in vs])
    pmax = np.array([v.max_power_kw for v in vs])
    floor = np.array([v.min_soc * v.capacity_kwh for v in vs])
    reserve = np.array([min(v.min_soc + v.reserve_soc, v.max_soc) * v.capacity_kwh for v in vs])
    slack = np.clip(floor[:, None] - e, 0, None)
    before = np.concatenate([np.array([[v.plugged] for v in vs]), x[:, :-1]], axis=1)
    needed = np.zeros(nt) if data.needed_vehicles is None else np.asarray(data.needed_vehicles)
    workers = np.full(nt, nv) if data.workers is None else np.asarray(data.workers)
    site = base + g.sum(axis=0) / dt_h
    demand = 0.0
    for charge in data.demand_charges:
        win = np.ones(nt, bool) if charge.in_window is None else np.asarray(charge.in_window)
        peak = max(charge.peak_so_far_kw, float(site[win].max()) if win.any() else 0.0)
        demand += charge.rate_per_kw * (peak - charge.peak_so_far_kw)
    terms = {
        "energy_cost": float((price * g.sum(axis=0)).sum()),
        "demand_increment": demand,
        "stored_value": float((stored / eff * (e[:, -1] - e0)).sum()),
        "stored_port_h": float(((e[:, -1] - e0) / (eff * pmax)).sum()),
        "shortfall_vh": float(np.clip(needed - workers + x.sum(axis=0), 0, None).sum() * dt_h),
        "sessions": float(np.clip(x.astype(int) - before.astype(int), 0, None).sum()),
        "occupied_port_h": float(x.sum() * dt_h),
        "soc_slack_kwh": float(slack.sum()),
        "reserve_slack_kwh": float(np.clip(reserve[:, None] - e - slack, 0, None).sum()),
    }
    terms["objective"] = (
        data.alpha_energy
        / data.energy_norm
        * (terms["energy_cost"] + terms["demand_increment"] - terms["stored_value"])
        + data.alpha_downtime / data.downtime_norm * terms["shortfall_vh"]
        + data.alpha_utilization
        / data.utilization_norm
        * (terms["sessions"] + terms["occupied_port_h"] - terms["stored_port_h"])
        + WEAR_PER_KWH * float(g.sum())
        + SOC_SLACK_PENALTY * terms["soc_slack_kwh"]
        + RESERVE_PENALTY * terms["reserve_slack_kwh"]
    )
    return terms


def make_planner(
    num_vehicles: int,
    periods: int,
    num_demand_charges: int,
    options: SolverOptions,
    binary_periods: int | None = None,
    min_session_periods: int = 1,
) -> ChargingPlanner:
    """The full MILP for small fleets, the hierarchical one from ``HIERARCHICAL_MIN_VEHICLES``.

    ``binary_periods`` (the full MILP's relaxed tail) and ``min_session_periods`` do not
    apply to the hierarchical planner, whose first stage has one integer per period.
    """
    cls = HierarchicalPlanner if num_vehicles >= HIERARCHICAL_MIN_VEHICLES else ChargingPlanner
    start = time.perf_counter()
    planner = cls(
        num_vehicles,
        periods,
        num_demand_charges,
        options=options,
        binary_periods=binary_periods,
        min_session_periods=min_session_periods,
    )
    log.debug("%s built in %.3f s", cls.__name__, time.perf_counter() - start)
    return planner
