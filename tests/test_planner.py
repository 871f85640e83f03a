"""agentev.optimization.planner: the charging MILP.

* against an independent brute force (every charging schedule, an LP for the rest, written
  from the module docstring's formulation),
* HiGHS against GLPK,
* every constraint checked on the plan's arrays, not on the Pyomo model,
* the CC-CV cuts against the sampled charging curve,
* fallbacks (infeasible, time limit, missing solver), shape errors, re-solves with new
  parameters, determinism.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import replace

import numpy as np
import pyomo.environ as pyo
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.optimize import linprog

from agentev.battery import period_charge_curve
from agentev.config import VehicleType
from agentev.optimization import planner as planner_module
from agentev.optimization.planner import (
    MAX_CUTS,
    RESERVE_PENALTY,
    SOC_SLACK_PENALTY,
    WEAR_PER_KWH,
    ChargingPlanner,
    Plan,
    PlanCharger,
    PlanDemandCharge,
    PlanInput,
    PlanVehicle,
    assign_ports,
    block_periods,
    coarse_tail_lengths,
    plan_charging,
    round_plugged,
    vehicle_cuts,
)
from agentev.optimization.solvers import SolverOptions, SolverUnavailableError

EXACT = SolverOptions(mip_gap=1e-6)
EXACT_GLPK = SolverOptions(solver="glpk", mip_gap=1e-6)
TOL = 1e-6


def gap_tol(value: float) -> float:
    """What a solve stopped at a relative (and absolute) gap of 1e-6 may differ by."""
    return 2e-6 * max(1.0, abs(value))


# ------------------------------------------------------------------ the problem, read off
# the dataclass docs and the module docstring (independent of the planner's update()).
def dt_h(data: PlanInput) -> float:
    """The period length (hours) of an instance with periods of one length."""
    return data.period_min / 60.0


def period_minutes(data: PlanInput) -> np.ndarray:
    """Each period's length (minutes): ``period_lengths_min`` if given."""
    if data.period_lengths_min is None:
        return np.full(data.periods, data.period_min)
    return np.asarray(data.period_lengths_min, dtype=float)


def free_periods(v: PlanVehicle, data: PlanInput) -> np.ndarray:
    """a_vt: a period counts if one window covers all of it; None: free throughout."""
    if v.free_windows is None:
        return np.ones(data.periods, dtype=bool)
    ends = np.cumsum(period_minutes(data))
    starts = ends - period_minutes(data)
    return np.array(
        [
            any(lo <= a and b <= hi for lo, hi in v.free_windows)
            for a, b in zip(starts, ends, strict=True)
        ]
    )


def required_energy(v: PlanVehicle, data: PlanInput) -> np.ndarray:
    """R_vt: energy at the end of the period in which each ``time_min`` falls (-inf: none).

    The instances here never put a requirement on a period boundary or past the horizon.
    """
    req = np.full(data.periods, -np.inf)
    ends = np.cumsum(period_minutes(data))
    for when, energy in v.required:
        t = int(np.flatnonzero(ends > when)[0])
        req[t] = max(req[t], energy)
    return req


def work_energy(v: PlanVehicle, data: PlanInput) -> np.ndarray:
    """c_vt: consumption if working; None: idle_kw throughout."""
    if v.work_kwh is None:
        return v.idle_kw * period_minutes(data) / 60.0
    return np.asarray(v.work_kwh, dtype=float)


def working_ports(data: PlanInput) -> np.ndarray:
    """N^port_t: ports of the chargers available in each period."""
    out = np.zeros(data.periods)
    for c in data.chargers:
        for t in range(data.periods):
            if c.available is None or c.available[t]:
                out[t] += c.ports
    return out


def taper_cuts(v: PlanVehicle, period_min: float) -> list[tuple[float, float]]:
    """The cuts the planner uses: vehicle_cuts with slope < -1e-9 (the power bound does the
    constant-power part)."""
    cuts = [c for c in vehicle_cuts(v, period_min) if c[1] < -1e-9]
    assert cuts, "a battery always has a taper near full charge"
    return cuts


def stored_price(data: PlanInput) -> float:
    if data.stored_energy_price is not None:
        return data.stored_energy_price
    return float(np.mean(data.price_per_kwh))


def in_window(charge: PlanDemandCharge, nt: int) -> np.ndarray:
    if charge.in_window is None:
        return np.ones(nt, dtype=bool)
    return np.asarray(charge.in_window, dtype=bool)


class ScheduleLP:
    """The docstring's MILP with the schedule x fixed: an LP in g, E, s, u, r, q, P.

    Built once per instance (only bounds, right-hand sides and a constant depend on x) and
    solved with scipy's HiGHS LP.
    """

    def __init__(self, data: PlanInput) -> None:
        self.data = data
        nv, nt, nd = len(data.vehicles), data.periods, len(data.demand_charges)
        self.nv, self.nt, self.nd = nv, nt, nd
        dt = dt_h(data)
        self.dt = dt
        nvt = nv * nt
        self.n = 5 * nvt + nt + nd
        w_e = data.alpha_energy / data.energy_norm
        w_d = data.alpha_downtime / data.downtime_norm
        w_u = data.alpha_utilization / data.utilization_norm
        self.w_u = w_u
        lam = [stored_price(data) / v.efficiency for v in data.vehicles]
        # port-hours a stored battery kWh saves later
        port_h = [1.0 / (v.efficiency * v.max_power_kw) for v in data.vehicles]

        c = np.zeros(self.n)
        for v in range(nv):
            for t in range(nt):
                c[self.gi(v, t)] = w_e * data.price_per_kwh[t] + WEAR_PER_KWH
                c[self.si(v, t)] = w_u
                c[self.ui(v, t)] = SOC_SLACK_PENALTY
                c[self.ri(v, t)] = RESERVE_PENALTY
            c[self.ei(v, nt - 1)] -= w_e * lam[v] + w_u * port_h[v]
        for t in range(nt):
            c[self.qi(t)] = w_d * dt
        for d, charge in enumerate(data.demand_charges):
            c[self.pi(d)] = w_e * charge.rate_per_kw
        self.c = c
        self.const = w_e * (
            sum(lam[v] * veh.soc * veh.capacity_kwh for v, veh in enumerate(data.vehicles))
            - sum(ch.rate_per_kw * ch.peak_so_far_kw for ch in data.demand_charges)
        ) + w_u * sum(port_h[v] * veh.soc * veh.capacity_kwh for v, veh in enumerate(data.vehicles))

        e0 = np.array([veh.soc * veh.capacity_kwh for veh in data.vehicles])
        self.e0 = e0
        ub_rows, ub_rhs = [], []

        def row(entries):
            r = np.zeros(self.n)
            for i, val in entries:
                r[i] += val
            return r

        # eta g_vt <= a_k + b_k E_{v,t-1}
        for v, veh in enumerate(data.vehicles):
            for a, b in taper_cuts(veh, data.period_min):
                for t in range(nt):
                    if t == 0:
                        ub_rows.append(row([(self.gi(v, 0), veh.efficiency)]))
                        ub_rhs.append(a + b * e0[v])
                    else:
                        ub_rows.append(
                            row([(self.gi(v, t), veh.efficiency), (self.ei(v, t - 1), -b)])
                        )
                        ub_rhs.append(a)
        # E_vt + u_vt >= min_soc C_v
        for v, veh in enumerate(data.vehicles):
            for t in range(nt):
                ub_rows.append(row([(self.ei(v, t), -1.0), (self.ui(v, t), -1.0)]))
                ub_rhs.append(-veh.min_soc * veh.capacity_kwh)
        # E_vt + u_vt + r_vt >= (min_soc + reserve) C_v
        for v, veh in enumerate(data.vehicles):
            floor = min(veh.min_soc + veh.reserve_soc, veh.max_soc) * veh.capacity_kwh
            for t in range(nt):
                ub_rows.append(
                    row([(self.ei(v, t), -1.0), (self.ui(v, t), -1.0), (self.ri(v, t), -1.0)])
                )
                ub_rhs.append(-floor)
        # sum_v g_vt <= (L - B_t) dt
        if data.grid_limit_kw is not None:
            for t in range(nt):
                ub_rows.append(row([(self.gi(v, t), 1.0) for v in range(nv)]))
                ub_rhs.append((data.grid_limit_kw - data.base_load_kw[t]) * dt)
        # P_d >= w_dt (B_t + sum_v g_vt / dt)
        for d, charge in enumerate(data.demand_charges):
            win = in_window(charge, nt)
            for t in range(nt):
                if win[t]:
                    ub_rows.append(
                        row([(self.gi(v, t), 1.0 / dt) for v in range(nv)] + [(self.pi(d), -1.0)])
                    )
                    ub_rhs.append(-data.base_load_kw[t])
        self.A_ub = np.array(ub_rows)
        self.b_ub = np.array(ub_rhs)

        # E_vt = E_{v,t-1} + eta g_vt - c_vt
        eq_rows = []
        for v, veh in enumerate(data.vehicles):
            for t in range(nt):
                entries = [(self.ei(v, t), 1.0), (self.gi(v, t), -veh.efficiency)]
                if t > 0:
                    entries.append((self.ei(v, t - 1), -1.0))
                eq_rows.append(row(entries))
        self.A_eq = np.array(eq_rows)
        self.work = np.array([work_energy(veh, data) for veh in data.vehicles])
        self.req = np.array([required_energy(veh, data) for veh in data.vehicles])
        self.free = np.array([free_periods(veh, data) for veh in data.vehicles])
        self.ports = working_ports(data)
        self.x_now = np.array([1.0 if veh.plugged else 0.0 for veh in data.vehicles])

    # variable indices
    def gi(self, v, t):
        return v * self.nt + t

    def ei(self, v, t):
        return self.nv * self.nt + v * self.nt + t

    def si(self, v, t):
        return 2 * self.nv * self.nt + v * self.nt + t

    def ui(self, v, t):
        return 3 * self.nv * self.nt + v * self.nt + t

    def ri(self, v, t):
        return 4 * self.nv * self.nt + v * self.nt + t

    def qi(self, t):
        return 5 * self.nv * self.nt + t

    def pi(self, d):
        return 5 * self.nv * self.nt + self.nt + d

    def schedules(self):
        """Every x in {0,1}^(nv x nt) with x <= a and sum_v x_vt <= N^port_t."""
        cells = [(v, t) for v in range(self.nv) for t in range(self.nt) if self.free[v, t]]
        for bits in itertools.product((0, 1), repeat=len(cells)):
            x = np.zeros((self.nv, self.nt))
            for (v, t), b in zip(cells, bits, strict=True):
                x[v, t] = b
            if np.all(x.sum(axis=0) <= self.ports):
                yield x

    def solve(self, x: np.ndarray) -> float | None:
        """The optimum with schedule x fixed (None if infeasible)."""
        data, nv, nt, dt = self.data, self.nv, self.nt, self.dt
        if np.any(self.req > np.array([[v.max_soc * v.capacity_kwh] for v in data.vehicles])):
            return None
        b_eq = []
        for v in range(nv):
            for t in range(nt):
                rhs = -self.work[v, t]
                b_eq.append(rhs + (self.e0[v] if t == 0 else 0.0))
        bounds = [(0.0, None)] * self.n
        needed = np.zeros(nt) if data.needed_vehicles is None else np.asarray(data.needed_vehicles)
        workers = np.full(nt, float(nv)) if data.workers is None else np.asarray(data.workers)
        for v, veh in enumerate(data.vehicles):
            for t in range(nt):
                bounds[self.gi(v, t)] = (0.0, veh.max_power_kw * dt * x[v, t])
                floor = None if np.isinf(self.req[v, t]) else self.req[v, t]  # free below
                bounds[self.ei(v, t)] = (floor, veh.max_soc * veh.capacity_kwh)
                prev = self.x_now[v] if t == 0 else x[v, t - 1]
                bounds[self.si(v, t)] = (max(0.0, x[v, t] - prev), None)
        for t in range(nt):
            bounds[self.qi(t)] = (max(0.0, needed[t] - workers[t] + x[:, t].sum()), None)
        for d, charge in enumerate(data.demand_charges):
            bounds[self.pi(d)] = (charge.peak_so_far_kw, None)
        res = linprog(
            self.c,
            A_ub=self.A_ub if len(self.b_ub) else None,
            b_ub=self.b_ub if len(self.b_ub) else None,
            A_eq=self.A_eq,
            b_eq=np.array(b_eq),
            bounds=bounds,
            method="highs",
            options={"primal_feasibility_tolerance": 1e-9, "dual_feasibility_tolerance": 1e-9},
        )
        if res.status == 2:
            return None
        assert res.status == 0, res.message
        return float(res.fun) + self.const + self.w_u * dt * float(x.sum())

    def brute_force(self) -> tuple[float | None, np.ndarray | None, int]:
        best, best_x, feasible = None, None, 0
        for x in self.schedules():
            value = self.solve(x)
            if value is None:
                continue
            feasible += 1
            if best is None or value < best:
                best, best_x = value, x
        return best, best_x, feasible


# ------------------------------------------------------------------ random instances
def random_instance(
    rng: np.random.Generator,
    nv: int,
    nt: int,
    nd: int = 0,
    site_limit: bool = False,
    failures: bool = True,
    required_p: float = 0.4,
    stored_energy_price: float | None = None,
) -> PlanInput:
    """A small instance with every feature switched on at random.

    ``required_p``: chance of a vehicle having an energy requirement; ``stored_energy_price``:
    fixed (a high one makes charging pay), else random or None.
    """
    pm = float(rng.choice([15.0, 30.0, 60.0]))
    chargers = []
    for i in range(int(rng.integers(1, 3))):
        available = None
        if failures and rng.random() < 0.5:
            available = [bool(a) for a in rng.random(nt) < 0.75]
        chargers.append(PlanCharger(f"c{i}", ports=int(rng.integers(1, 3)), available=available))
    ports = [(c.charger_id, p) for c in chargers for p in range(c.ports)]
    rng.shuffle(ports)
    vehicles = []
    for i in range(nv):
        cap = float(rng.uniform(3.0, 20.0))
        max_soc = float(rng.uniform(0.85, 1.0))
        soc = float(rng.uniform(0.1, max_soc))
        windows = None
        if rng.random() < 0.7:
            # free periods as windows that cover them (with slack), a few partial windows
            windows = []
            for t in range(nt):
                r = rng.random()
                if r < 0.65:
                    windows.append((t * pm - rng.uniform(0, 3), (t + 1) * pm + rng.uniform(0, 3)))
                elif r < 0.8:
                    windows.append((t * pm + rng.uniform(1, pm / 2), (t + 1) * pm + 5))
        work = None
        if rng.random() < 0.6:
            work = [float(w) for w in rng.uniform(0.0, 0.12 * cap, nt)]
        required = ()
        if rng.random() < required_p:
            when = float(rng.uniform(0.05, nt - 0.05)) * pm
            if abs(when / pm - round(when / pm)) < 1e-3:
                when += 0.3
            required = ((when, float(rng.uniform(0.2, 0.9)) * max_soc * cap),)
        plugged = bool(rng.random() < 0.35)
        port = ports.pop() if plugged and ports and rng.random() < 0.7 else None
        vehicles.append(
            PlanVehicle(
                vehicle_id=i,
                soc=soc,
                capacity_kwh=cap,
                max_power_kw=float(rng.uniform(1.5, 6.0)),
                efficiency=float(rng.uniform(0.85, 0.95)),
                min_soc=float(rng.uniform(0.1, 0.35)),
                reserve_soc=0.05 * (i % 3),  # no draw: the instances' random stream stays
                max_soc=max_soc,
                knee_soc=float(rng.uniform(0.5, 0.9)),
                floor_fraction=float(rng.uniform(0.05, 0.3)),
                idle_kw=float(rng.uniform(0.0, 0.3)),
                free_windows=windows,
                work_kwh=work,
                required=required,
                plugged=plugged,
                port=port,
            )
        )
    base = [float(b) for b in rng.uniform(5.0, 20.0, nt)]
    charges = []
    for _ in range(nd):
        win = None if rng.random() < 0.4 else [bool(w) for w in rng.random(nt) < 0.6]
        charges.append(
            PlanDemandCharge(
                rate_per_kw=float(rng.uniform(0.05, 0.6)),
                in_window=win,
                peak_so_far_kw=float(rng.uniform(0.0, max(base) + 6.0)),
            )
        )
    alphas = rng.dirichlet([2.0, 2.0, 2.0])
    return PlanInput(
        period_min=pm,
        price_per_kwh=[float(p) for p in rng.uniform(0.05, 0.45, nt)],
        base_load_kw=base,
        vehicles=vehicles,
        chargers=chargers,
        grid_limit_kw=float(max(base) + rng.uniform(0.5, 8.0)) if site_limit else None,
        needed_vehicles=(
            None if rng.random() < 0.3 else [int(n) for n in rng.integers(0, nv + 1, nt)]
        ),
        workers=None if rng.random() < 0.5 else [int(n) for n in rng.integers(0, nv + 1, nt)],
        demand_charges=charges,
        alpha_energy=float(alphas[0]),
        alpha_downtime=float(alphas[1]),
        alpha_utilization=float(alphas[2]),
        energy_norm=float(rng.uniform(0.3, 3.0)),
        downtime_norm=float(rng.uniform(0.3, 3.0)),
        utilization_norm=float(rng.uniform(0.3, 3.0)),
        stored_energy_price=(
            stored_energy_price
            if stored_energy_price is not None
            else None
            if rng.random() < 0.5
            else float(rng.uniform(0.05, 0.4))
        ),
    )


def fleet_instance(nv: int = 10, nt: int = 16, seed: int = 3) -> PlanInput:
    """A busy fleet: shifts, work, a tight connection, a demand charge, needed vehicles."""
    rng = np.random.default_rng(seed)
    vehicles = [
        PlanVehicle(
            vehicle_id=i,
            soc=float(rng.uniform(0.2, 0.9)),
            capacity_kwh=20.0,
            max_power_kw=4.0,
            idle_kw=0.1,
            work_kwh=[float(w) for w in rng.uniform(0.0, 1.5, nt)],
            free_windows=[(0.0, 60.0), (120.0, 240.0)],
        )
        for i in range(nv)
    ]
    return PlanInput(
        period_min=15.0,
        price_per_kwh=[float(p) for p in rng.uniform(0.1, 0.4, nt)],
        base_load_kw=[float(b) for b in rng.uniform(10.0, 30.0, nt)],
        vehicles=vehicles,
        chargers=[PlanCharger("a", 2), PlanCharger("b", 2)],
        grid_limit_kw=45.0,
        needed_vehicles=[int(n) for n in rng.integers(4, 9, nt)],
        demand_charges=[PlanDemandCharge(5.0, None, 30.0)],
    )


def simple_instance(prices=(0.3, 0.0, 0.0, 0.4), **changes) -> PlanInput:
    """Two vehicles, four half-hour periods, one two-port charger; cheap middle periods."""
    data = PlanInput(
        period_min=30.0,
        price_per_kwh=list(prices),
        base_load_kw=[5.0] * len(prices),
        vehicles=[
            PlanVehicle(0, soc=0.5, capacity_kwh=10.0),
            PlanVehicle(1, soc=0.3, capacity_kwh=10.0),
        ],
        chargers=[PlanCharger("c0", ports=2)],
        alpha_utilization=0.01,
    )
    return replace(data, **changes)


def solve_fresh(data: PlanInput, options: SolverOptions = EXACT) -> Plan:
    planner = ChargingPlanner(
        len(data.vehicles), data.periods, len(data.demand_charges), options=options
    )
    return planner.solve(data)


# ------------------------------------------------------------------ constraint checks
def check_plan(
    data: PlanInput,
    plan: Plan,
    exact: bool = True,
    required_is_hard: bool = True,
    terms: bool = True,
) -> None:
    """Every constraint of the formulation, on the plan's arrays.

    ``required_is_hard``: False for the hierarchical planner, whose greedy second stage
    treats required energies as priorities.

    ``terms``: False for a plan with a relaxed tail, whose terms are its relaxation's.

    ``exact``: the plan was solved to (near) optimality, so the slack-like terms (sessions,
    shortfall, SoC slack, demand increment) sit at their lower bounds; else only >= them.
    """
    nv, nt = len(data.vehicles), data.periods
    minutes = period_minutes(data)
    dt = minutes / 60.0
    x, g, e = plan.plugged, plan.grid_kwh, plan.energy_kwh
    assert x.shape == g.shape == e.shape == (nv, nt)
    assert x.dtype == bool
    ports_now = working_ports(data)
    # plugged only in free periods; not more than the working ports
    for v, veh in enumerate(data.vehicles):
        assert not np.any(x[v] & ~free_periods(veh, data)), (v, x[v])
    assert np.all(x.sum(axis=0) <= ports_now), (x.sum(axis=0), ports_now)
    for v, veh in enumerate(data.vehicles):
        e_prev = veh.soc * veh.capacity_kwh
        work = work_energy(veh, data)
        req = required_energy(veh, data)
        for t in range(nt):
            assert g[v, t] >= 0.0
            assert g[v, t] <= veh.max_power_kw * dt[t] * x[v, t] + TOL, (v, t)
            for a, b in taper_cuts(veh, minutes[t]):
                assert veh.efficiency * g[v, t] <= a + b * e_prev + TOL, (v, t, a, b)
            expected = e_prev + veh.efficiency * g[v, t] - work[t]
            assert e[v, t] == pytest.approx(expected, abs=TOL), (v, t)
            assert e[v, t] <= veh.max_soc * veh.capacity_kwh + TOL, (v, t)
            if required_is_hard:
                assert e[v, t] >= req[t] - TOL, (v, t)
            e_prev = e[v, t]
    if data.grid_limit_kw is not None:
        for t in range(nt):
            assert g[:, t].sum() <= (data.grid_limit_kw - data.base_load_kw[t]) * dt[t] + TOL, t
    check_ports(data, plan)
    if terms:
        check_terms(data, plan, exact)


def check_ports(data: PlanInput, plan: Plan) -> None:
    nv, nt = len(data.vehicles), data.periods
    x = plan.plugged
    assert len(plan.ports) == nv and all(len(row) == nt for row in plan.ports)
    for t in range(nt):
        working = {
            (c.charger_id, p)
            for c in data.chargers
            if c.available is None or c.available[t]
            for p in range(c.ports)
        }
        used = [plan.ports[v][t] for v in range(nv) if plan.ports[v][t] is not None]
        assert len(used) == len(set(used)), f"period {t}: a port used twice: {used}"
        for v, veh in enumerate(data.vehicles):
            port = plan.ports[v][t]
            if not x[v, t]:
                assert port is None, (v, t)
                continue
            assert port in working, (v, t, port)
            before = plan.ports[v][t - 1] if t > 0 else (veh.port if veh.plugged else None)
            if (t > 0 and x[v, t - 1] or t == 0) and before is not None and before in working:
                assert port == before, f"vehicle {v} moved from {before} to {port} at {t}"


def check_terms(data: PlanInput, plan: Plan, exact: bool = True) -> None:
    """The reported terms follow from the arrays, and the objective from the terms."""

    def at_bound(value: float, bound: float) -> None:
        if exact:
            assert value == pytest.approx(bound, abs=TOL)
        else:
            assert value >= bound - TOL

    nv, nt, dt = len(data.vehicles), data.periods, period_minutes(data) / 60.0
    x, g, e = plan.plugged.astype(float), plan.grid_kwh, plan.energy_kwh
    terms = plan.terms
    price = np.asarray(data.price_per_kwh)
    e0 = np.array([v.soc * v.capacity_kwh for v in data.vehicles])
    lam = np.array([stored_price(data) / v.efficiency for v in data.vehicles])
    e_lo = np.array([v.min_soc * v.capacity_kwh for v in data.vehicles])
    e_res = np.array(
        [min(v.min_soc + v.reserve_soc, v.max_soc) * v.capacity_kwh for v in data.vehicles]
    )
    port_h = np.array([1.0 / (v.efficiency * v.max_power_kw) for v in data.vehicles])
    assert terms["stored_port_h"] == pytest.approx(float((port_h * (e[:, -1] - e0)).sum()), abs=TOL)
    assert terms["energy_cost"] == pytest.approx(float((g * price).sum()), abs=TOL)
    assert terms["stored_value"] == pytest.approx(float((lam * (e[:, -1] - e0)).sum()), abs=TOL)
    x_now = np.array([float(v.plugged) for v in data.vehicles])
    starts = np.maximum(0.0, x - np.column_stack([x_now, x[:, :-1]]))
    at_bound(terms["sessions"], float(starts.sum()))
    assert terms["occupied_port_h"] == pytest.approx(float((x * dt).sum()), abs=TOL)
    u = np.maximum(0.0, e_lo[:, None] - e)
    at_bound(terms["soc_slack_kwh"], float(u.sum()))
    at_bound(terms["reserve_slack_kwh"], float(np.maximum(0.0, e_res[:, None] - e - u).sum()))
    site_kw = np.asarray(data.base_load_kw) + g.sum(axis=0) / dt
    increment = 0.0
    for charge in data.demand_charges:
        peak = max([charge.peak_so_far_kw] + list(site_kw[in_window(charge, nt)]))
        increment += charge.rate_per_kw * (peak - charge.peak_so_far_kw)
    at_bound(terms["demand_increment"], increment)
    needed = np.zeros(nt) if data.needed_vehicles is None else np.asarray(data.needed_vehicles)
    workers = np.full(nt, float(nv)) if data.workers is None else np.asarray(data.workers)
    shortfall = (np.maximum(0.0, needed - workers + x.sum(axis=0)) * dt).sum()
    at_bound(terms["shortfall_vh"], float(shortfall))
    objective = (
        data.alpha_energy
        / data.energy_norm
        * (terms["energy_cost"] + terms["demand_increment"] - terms["stored_value"])
        + data.alpha_downtime / data.downtime_norm * terms["shortfall_vh"]
        + data.alpha_utilization
        / data.utilization_norm
        * (terms["sessions"] + terms["occupied_port_h"] - terms["stored_port_h"])
        + WEAR_PER_KWH * g.sum()
        + SOC_SLACK_PENALTY * terms["soc_slack_kwh"]
        + RESERVE_PENALTY * terms["reserve_slack_kwh"]
    )
    assert terms["objective"] == pytest.approx(objective, abs=1e-5)


# ------------------------------------------------------------------ 1. brute force
BRUTE_FORCE_CASES = [
    # (seed, vehicles, periods, demand charges, site limit)
    (1, 2, 3, 0, False),
    (2, 2, 4, 1, True),
    (3, 3, 3, 0, True),
    (4, 2, 4, 2, False),
    (5, 3, 3, 1, False),
    (6, 2, 4, 0, True),
    (7, 3, 3, 2, True),
    (8, 2, 3, 1, True),
]


@functools.cache
def brute_force_case(case: tuple) -> tuple[PlanInput, ScheduleLP, list[tuple[np.ndarray, float]]]:
    """The instance, its LP, and every feasible schedule with its optimum."""
    seed, nv, nt, nd, limit = case
    data = random_instance(np.random.default_rng(seed), nv, nt, nd, site_limit=limit)
    lp = ScheduleLP(data)
    values = [(x, val) for x in lp.schedules() if (val := lp.solve(x)) is not None]
    return data, lp, values


@pytest.mark.parametrize("case", BRUTE_FORCE_CASES)
def test_milp_objective_equals_brute_force_over_all_schedules(case):
    data, lp, values = brute_force_case(case)
    plan = solve_fresh(data)
    if not values:
        assert plan.fallback and plan.status == "fcfs", plan.status
        return
    best_x, best = min(values, key=lambda xv: xv[1])
    assert plan.status in ("optimal", "feasible") and not plan.fallback, plan.message
    objective = plan.terms["objective"]
    assert objective == pytest.approx(best, abs=gap_tol(best)), (objective, best, best_x)
    # the MILP's schedule is one of the enumerated ones, and its LP gives its objective
    assert any(np.array_equal(plan.plugged, x) for x in lp.schedules())
    assert lp.solve(plan.plugged.astype(float)) == pytest.approx(objective, abs=gap_tol(best))


def test_brute_force_instances_are_not_trivial():
    """Most instances are feasible, optima charge, and the schedule matters."""
    feasible, charging, spreads = 0, 0, []
    for case in BRUTE_FORCE_CASES:
        _, _, values = brute_force_case(case)
        if values:
            feasible += 1
            best_x, _ = min(values, key=lambda xv: xv[1])
            charging += best_x.sum() > 0
            spreads.append(max(v for _, v in values) - min(v for _, v in values))
    assert feasible >= 6
    assert charging >= 3
    assert min(spreads) > 1e-3


def test_brute_force_agrees_on_a_cccv_bound_instance():
    """Nearly full batteries with a cheap period: only the CC-CV taper limits the charge."""
    data = PlanInput(
        period_min=60.0,
        price_per_kwh=[0.4, 0.01, 0.4],
        base_load_kw=[5.0, 5.0, 5.0],
        vehicles=[
            PlanVehicle(0, soc=0.75, capacity_kwh=6.0, max_power_kw=4.0, knee_soc=0.6),
            PlanVehicle(1, soc=0.85, capacity_kwh=5.0, max_power_kw=5.0, knee_soc=0.7),
        ],
        chargers=[PlanCharger("c0", ports=2)],
        alpha_utilization=0.01,
    )
    best, best_x, _ = ScheduleLP(data).brute_force()
    plan = solve_fresh(data)
    assert best_x[:, 1].all()
    assert plan.terms["objective"] == pytest.approx(best, abs=gap_tol(best))
    # the taper binds: less than the constant-power energy goes in
    assert np.all(plan.grid_kwh[:, 1] < np.array([4.0, 5.0]) - 0.1)
    check_plan(data, plan)


def keeps_min_session(x: np.ndarray, x_now: np.ndarray, length: int, binary: int) -> bool:
    """Every session started in the first ``binary`` periods lasts ``length`` periods there."""
    for v in range(x.shape[0]):
        for t in range(binary):
            prev = x_now[v] if t == 0 else x[v, t - 1]
            if x[v, t] > 0.5 and prev < 0.5:
                if not all(x[v, u] > 0.5 for u in range(t + 1, min(binary, t + length))):
                    return False
    return True


@pytest.mark.parametrize("case", BRUTE_FORCE_CASES)
def test_milp_with_a_minimum_session_equals_brute_force_over_the_schedules_keeping_it(case):
    data, lp, values = brute_force_case(case)
    kept = [(x, val) for x, val in values if keeps_min_session(x, lp.x_now, 2, data.periods)]
    planner = ChargingPlanner(
        len(data.vehicles), data.periods, len(data.demand_charges), EXACT, min_session_periods=2
    )
    plan = planner.solve(data)
    if not kept:
        assert plan.fallback and plan.status == "fcfs", plan.status
        return
    best_x, best = min(kept, key=lambda xv: xv[1])
    assert plan.status in ("optimal", "feasible") and not plan.fallback, plan.message
    assert plan.terms["objective"] == pytest.approx(best, abs=gap_tol(best)), best_x
    assert keeps_min_session(plan.plugged, lp.x_now, 2, data.periods)


def test_a_minimum_session_changes_some_brute_force_optimum():
    """The instances above test the constraint: some unconstrained optimum breaks it."""
    broken = 0
    for case in BRUTE_FORCE_CASES:
        data, lp, values = brute_force_case(case)
        if values:
            best_x, _ = min(values, key=lambda xv: xv[1])
            broken += not keeps_min_session(best_x, lp.x_now, 2, data.periods)
    assert broken >= 1


@pytest.mark.parametrize(("seed", "length", "binary"), [(3, 2, 4), (4, 3, 5), (5, 4, 8)])
def test_a_plan_keeps_its_minimum_session_in_the_binary_periods(seed, length, binary):
    data = mixed_power(fleet_instance(nv=6, nt=8, seed=seed))
    planner = ChargingPlanner(
        6, 8, len(data.demand_charges), EXACT, binary_periods=binary, min_session_periods=length
    )
    plan = planner.solve(data)
    assert plan.status == "optimal" and not plan.fallback, plan.message
    check_plan(data, plan, exact=False, terms=binary == data.periods)
    x_now = np.array([float(v.plugged) for v in data.vehicles])
    assert keeps_min_session(plan.plugged.astype(float), x_now, length, binary)


@pytest.mark.parametrize(("minutes", "periods"), [(30.0, 2), (20.0, 2), (None, 1), (15.0, 1)])
def test_the_controllers_minimum_session_is_whole_periods(minutes, periods):
    from agentev.optimization.controller import OptimizationController

    controller = OptimizationController(period_min=15, min_session_min=minutes)
    assert controller.min_session_periods == periods


def test_a_minimum_session_below_one_period_is_refused():
    with pytest.raises(ValueError, match="min_session_periods = 0: must be at least 1"):
        ChargingPlanner(2, 4, min_session_periods=0)


# ------------------------------------------------------------------ 2. HiGHS vs GLPK
@pytest.mark.parametrize("seed", [14, 16, 28, 31])
def test_highs_and_glpk_agree(seed):
    rng = np.random.default_rng(seed)
    data = random_instance(
        rng, 3, 5, nd=2, site_limit=True, required_p=0.0, stored_energy_price=0.6
    )
    highs = solve_fresh(data, EXACT)
    glpk = solve_fresh(data, EXACT_GLPK)
    assert highs.status in ("optimal", "feasible") and not highs.fallback, highs.message
    assert glpk.status in ("optimal", "feasible") and not glpk.fallback, glpk.message
    a, b = highs.terms["objective"], glpk.terms["objective"]
    assert a == pytest.approx(b, abs=2 * gap_tol(a))
    check_plan(data, highs)
    check_plan(data, glpk)


# ------------------------------------------------------------------ 3. constraints
@pytest.mark.parametrize("seed", [41, 42, 45, 50, 51, 62])
def test_plan_respects_every_constraint(seed):
    rng = np.random.default_rng(seed)
    data = random_instance(
        rng, 3, 5, nd=seed % 3, site_limit=bool(seed % 2), stored_energy_price=0.6
    )
    plan = plan_charging(data, EXACT)
    assert plan.status in ("optimal", "feasible") and not plan.fallback, plan.message
    assert plan.plugged.sum() >= 3
    check_plan(data, plan)


def test_plan_respects_every_constraint_on_a_busy_fleet():
    data = fleet_instance(nv=6, nt=8)
    plan = plan_charging(data)
    assert plan.status in ("optimal", "feasible"), plan.message
    assert plan.plugged.sum() > 0
    check_plan(data, plan, exact=False)


def test_ports_with_failures_and_vehicles_plugged_in_now():
    """Two ports fail mid-horizon; two vehicles already plugged in keep their ports."""
    nt = 4
    data = PlanInput(
        period_min=30.0,
        price_per_kwh=[0.05, 0.05, 0.05, 0.05],
        base_load_kw=[5.0] * nt,
        vehicles=[
            PlanVehicle(i, soc=0.3, capacity_kwh=30.0, plugged=i < 2, port=port)
            for i, port in enumerate([("b", 1), ("a", 0), None, None])
        ],
        chargers=[
            PlanCharger("a", ports=2, available=[True, True, False, True]),
            PlanCharger("b", ports=2),
        ],
        stored_energy_price=0.4,
        alpha_utilization=0.01,
    )
    plan = plan_charging(data, EXACT)
    check_plan(data, plan)
    # everyone charges whenever a port is free: 4, 4, 2 (charger a failed), 4
    assert plan.plugged.sum(axis=0).tolist() == [4, 4, 2, 4]
    assert plan.ports[0][0] == ("b", 1) and plan.ports[1][0] == ("a", 0)
    assert all(plan.ports[v][2][0] == "b" for v in range(4) if plan.plugged[v, 2])


def test_assign_ports_moves_a_vehicle_only_when_its_port_fails():
    plugged = np.array([[True, True, True], [True, True, True]])
    chargers = [PlanCharger("a", ports=1, available=[True, False, True]), PlanCharger("b", 2)]
    ports = assign_ports(plugged, chargers, [("b", 1), ("a", 0)])
    assert ports[0] == [("b", 1)] * 3
    assert ports[1] == [("a", 0), ("b", 0), ("b", 0)]
    with pytest.raises(ValueError, match="period 1"):
        assign_ports(np.ones((3, 3), dtype=bool), chargers)


# ------------------------------------------------------------------ 4. CC-CV cuts
CUT_VEHICLES = [
    (PlanVehicle(0, 0.5, capacity_kwh=10.0, max_power_kw=3.3), 15.0),
    (PlanVehicle(0, 0.5, capacity_kwh=10.0, max_power_kw=3.3), 60.0),
    (PlanVehicle(0, 0.5, 5.0, max_power_kw=4.0, knee_soc=0.6, floor_fraction=0.05), 30.0),
    (PlanVehicle(0, 0.5, 5.0, max_power_kw=4.0, knee_soc=0.6, floor_fraction=0.05), 60.0),
    (PlanVehicle(0, 0.5, 30.0, max_power_kw=10.0, knee_soc=0.9, max_soc=0.95), 30.0),
    (PlanVehicle(0, 0.5, 2.0, max_power_kw=6.0, knee_soc=0.5, efficiency=0.85), 15.0),
    (PlanVehicle(0, 0.5, 80.0, max_power_kw=22.0, knee_soc=0.8, floor_fraction=0.2), 15.0),
]


def vehicle_type(v: PlanVehicle) -> VehicleType:
    return VehicleType(
        capacity_kwh=v.capacity_kwh,
        max_charge_power_kw=v.max_power_kw,
        charging_efficiency=v.efficiency,
        min_soc=v.min_soc,
        max_soc=v.max_soc,
        cccv_knee_soc=v.knee_soc,
        cccv_floor_fraction=v.floor_fraction,
    )


def envelope(cuts, energies) -> np.ndarray:
    a = np.array([c[0] for c in cuts])[:, None]
    b = np.array([c[1] for c in cuts])[:, None]
    return np.min(a + b * np.asarray(energies)[None, :], axis=0)


def planner_envelope(v: PlanVehicle, period_min: float, energies) -> np.ndarray:
    """What the model allows: the power bound and the taper cuts."""
    flat = v.efficiency * v.max_power_kw * period_min / 60.0
    return np.minimum(flat, envelope(taper_cuts(v, period_min), energies))


@pytest.mark.parametrize(("v", "period_min"), CUT_VEHICLES)
def test_cuts_reproduce_the_sampled_charge_curve(v, period_min):
    """At the samples the cuts are built from (MAX_CUTS + 1 of them), exactly the curve."""
    xs, ys = period_charge_curve(vehicle_type(v), period_min, points=MAX_CUTS + 1)
    np.testing.assert_allclose(envelope(vehicle_cuts(v, period_min), xs), ys, rtol=0, atol=1e-9)
    np.testing.assert_allclose(planner_envelope(v, period_min, xs), ys, rtol=0, atol=1e-9)


@pytest.mark.parametrize(("v", "period_min"), CUT_VEHICLES)
def test_cuts_never_promise_more_than_the_battery_takes_and_stay_close(v, period_min):
    """At 200 start energies of a finer grid: chords of the concave curve lie below it.

    So the plan never counts on more energy than the battery takes in a period (it is
    conservative), and it undercounts by at most 1.5 % of the capacity.
    """
    xs, ys = period_charge_curve(vehicle_type(v), period_min, points=32 * 32 + 1)
    pick = np.random.default_rng(7).choice(len(xs), size=200, replace=False)
    xs, ys = np.asarray(xs)[pick], np.asarray(ys)[pick]
    over = planner_envelope(v, period_min, xs) - ys
    assert over.max() <= 1e-9, f"cuts allow {over.max():.4f} kWh more than the battery takes"
    assert over.min() >= -0.015 * v.capacity_kwh, (
        f"cuts undercount by {-over.min():.4f} kWh at E = {xs[int(np.argmin(over))]:.3f} kWh"
    )


# ------------------------------------------------------------------ 5. fallbacks
def infeasible(data: PlanInput) -> PlanInput:
    """Vehicle 0 must hold more than it can charge by the end of period 0."""
    v0 = replace(data.vehicles[0], required=((10.0, 0.99 * data.vehicles[0].capacity_kwh),))
    return replace(data, vehicles=[v0, *data.vehicles[1:]])


def test_infeasible_without_a_previous_plan_falls_back_to_fcfs():
    data = infeasible(simple_instance())
    plan = ChargingPlanner(2, 4).solve(data)
    assert plan.status == "fcfs" and plan.fallback and plan.message
    assert plan.plugged.shape == (2, 4) and not plan.plugged.any()


@pytest.mark.parametrize("elapsed", [1, 2])
def test_infeasible_after_a_feasible_plan_shifts_the_previous_plan(elapsed):
    planner = ChargingPlanner(2, 4, options=EXACT)
    first = planner.solve(simple_instance())
    assert first.status == "optimal" and first.plugged.any()
    assert first.plugged[:, elapsed:].any()  # the shift keeps some charging
    plan = planner.solve(infeasible(simple_instance()), elapsed_periods=elapsed)
    assert plan.status == "previous" and plan.fallback and plan.message
    for name in ("plugged", "grid_kwh", "energy_kwh"):
        np.testing.assert_array_equal(
            getattr(plan, name)[:, : 4 - elapsed], getattr(first, name)[:, elapsed:]
        )
        assert not getattr(plan, name)[:, 4 - elapsed :].any()
    check_ports(simple_instance(), plan)
    # an old plan is shifted once only
    again = planner.solve(infeasible(simple_instance()), elapsed_periods=1)
    assert again.status == "fcfs" and again.fallback


def test_previous_plan_shifted_past_the_horizon_is_not_used():
    planner = ChargingPlanner(2, 4, options=EXACT)
    assert planner.solve(simple_instance()).status == "optimal"
    plan = planner.solve(infeasible(simple_instance()), elapsed_periods=4)
    assert plan.status == "fcfs" and plan.fallback


def test_previous_plan_that_no_longer_fits_the_ports_does_not_raise():
    """A charger failed since the last plan: the shifted plan needs more ports than work."""
    planner = ChargingPlanner(2, 4, options=EXACT)
    first = planner.solve(simple_instance())
    assert first.plugged[:, 1].sum() == 2  # both vehicles charge in period 1
    failed = infeasible(
        simple_instance(chargers=[PlanCharger("c0", ports=2, available=[False, True, True, True])])
    )
    # period 0 of the new plan is period 1 of the old one: two vehicles, no working port
    plan = planner.solve(failed, elapsed_periods=1)
    assert plan.fallback and plan.message
    assert plan.status in ("previous", "fcfs")
    if plan.status == "previous":
        check_ports(failed, plan)


@pytest.mark.parametrize(
    "options",
    [
        SolverOptions(time_limit_s=1e-3),
        SolverOptions(solver="glpk", time_limit_s=1e-3, mip_gap=1e-9),
    ],
    ids=["highs", "glpk"],
)
def test_tiny_time_limit_ends_in_a_flagged_plan_or_a_fallback(options):
    data = fleet_instance()
    plan = plan_charging(data, options)
    assert plan.fallback and plan.message
    assert plan.status in ("feasible", "previous", "fcfs")
    assert plan.plugged.shape == (10, 16)
    if plan.status == "feasible":
        check_plan(data, plan, exact=False)


def test_missing_solver_raises_with_its_name():
    options = SolverOptions(solver="nonexistent_solver_xyz")
    with pytest.raises(SolverUnavailableError, match="nonexistent_solver_xyz"):
        ChargingPlanner(2, 4, options=options)
    with pytest.raises(SolverUnavailableError, match="nonexistent_solver_xyz"):
        plan_charging(simple_instance(), options)


# ------------------------------------------------------------------ 6. shape errors
def test_wrong_number_of_vehicles_names_both_shapes():
    planner = ChargingPlanner(2, 4)
    three = replace(
        simple_instance(), vehicles=[*simple_instance().vehicles, PlanVehicle(2, 0.5, 10.0)]
    )
    with pytest.raises(ValueError, match=r"3 vehicles x 4 periods.*2 x 4"):
        planner.solve(three)


def test_wrong_number_of_periods_or_demand_charges_names_both():
    planner = ChargingPlanner(2, 4)
    with pytest.raises(ValueError, match=r"2 vehicles x 3 periods.*2 x 4"):
        planner.solve(simple_instance(prices=(0.1, 0.2, 0.3), base_load_kw=[5.0] * 3))
    with pytest.raises(ValueError, match=r"1 demand charges.*built for 0"):
        planner.solve(simple_instance(demand_charges=[PlanDemandCharge(1.0)]))


# ------------------------------------------------------------------ 7. re-solve
def changed_prices(data: PlanInput) -> PlanInput:
    return replace(data, price_per_kwh=[0.45 - p for p in data.price_per_kwh])


def changed_coefficients(data: PlanInput) -> PlanInput:
    """Parameters that sit in constraint coefficients, not just bounds or costs."""
    nt = data.periods
    vehicles = [
        replace(
            v,
            efficiency=0.8,
            max_power_kw=v.max_power_kw * 1.7,
            knee_soc=0.55,
            idle_kw=0.6,
            work_kwh=[1.0] * nt,
            soc=0.5 * v.max_soc,
            required=(),
            plugged=not v.plugged,
            port=None,
        )
        for v in data.vehicles
    ]
    charges = [
        replace(c, in_window=[t % 2 == 0 for t in range(nt)], peak_so_far_kw=0.0)
        for c in data.demand_charges
    ]
    return replace(
        data,
        period_min=45.0,
        vehicles=vehicles,
        demand_charges=charges,
        chargers=[PlanCharger("z", ports=2, available=[t != 1 for t in range(nt)])],
        grid_limit_kw=max(data.base_load_kw) + 4.0,
        needed_vehicles=[1] * nt,
        alpha_utilization=0.05,
        stored_energy_price=0.6,
    )


@pytest.mark.parametrize("change", [changed_prices, changed_coefficients])
@pytest.mark.parametrize("seed", [31, 44])
def test_resolving_with_new_parameters_equals_a_fresh_planner(change, seed):
    rng = np.random.default_rng(seed)
    first = random_instance(rng, 3, 4, nd=1, site_limit=True, failures=False)
    second = change(first)
    planner = ChargingPlanner(3, 4, 1, options=EXACT)
    a = planner.solve(first)
    b = planner.solve(second)
    fresh = solve_fresh(second)
    for plan in (a, b, fresh):
        assert plan.status == "optimal" and not plan.fallback, plan.message
    # the change matters, and the re-solve sees it
    assert abs(a.terms["objective"] - fresh.terms["objective"]) > 1e-3
    assert b.terms["objective"] == pytest.approx(
        fresh.terms["objective"], abs=gap_tol(fresh.terms["objective"])
    )
    check_plan(second, b)
    # and back again
    c = planner.solve(first)
    assert c.terms["objective"] == pytest.approx(
        a.terms["objective"], abs=gap_tol(a.terms["objective"])
    )


# ------------------------------------------------------------------ 8. determinism
def test_highs_is_deterministic():
    data = fleet_instance(nv=6, nt=10, seed=5)
    first = plan_charging(data)
    second = plan_charging(data)
    planner = ChargingPlanner(6, 10, 1)
    third = planner.solve(data)
    fourth = planner.solve(data)
    assert first.status in ("optimal", "feasible") and not first.fallback
    for other in (second, third, fourth):
        np.testing.assert_array_equal(other.plugged, first.plugged)
        assert other.terms["objective"] == first.terms["objective"]
        assert other.status == first.status


# ------------------------------------------------------------------ hierarchical decomposition
def test_hierarchical_plan_respects_every_constraint_on_a_large_fleet():
    from agentev.optimization.hierarchical import HierarchicalPlanner

    data = fleet_instance(120, 16, seed=5)
    planner = HierarchicalPlanner(120, 16, len(data.demand_charges))
    plan = planner.solve(data)
    assert plan.status in ("optimal", "feasible") and not plan.fallback
    assert plan.plugged.any()
    # the second stage is a greedy assignment: required energies are priorities, not bounds
    check_plan(data, plan, exact=False, required_is_hard=False)
    check_ports(data, plan)
    # the first stage's count is what the second stage plugs in, when enough are free
    counts = [round(pyo_value(planner.model.n[t])) for t in range(16)]
    assert (plan.plugged.sum(axis=0) <= np.array(counts)).all()


def pyo_value(x) -> float:
    import pyomo.environ as pyo

    return float(pyo.value(x))


# ------------------------------------------------------------------ relaxed tail
@settings(max_examples=60, deadline=None)
@given(
    x=arrays(np.float64, (6, 5), elements=st.floats(0.0, 1.0)),
    ports=st.lists(st.integers(0, 6), min_size=5, max_size=5),
)
def test_rounding_a_relaxed_period_respects_ports_and_keeps_the_largest(x, ports):
    plugged = round_plugged(x, ports)
    for t in range(x.shape[1]):
        chosen = plugged[:, t]
        assert chosen.sum() <= ports[t]
        assert np.all(x[chosen, t] >= 0.5)
        if chosen.any() and (~chosen).any():
            # nobody left out has a larger value than someone chosen
            assert x[~chosen, t].max() <= x[chosen, t].min()
        if chosen.sum() < ports[t]:
            assert np.all(x[~chosen, t] < 0.5)


@pytest.mark.parametrize("binary", [1, 2, 4])
def test_a_relaxed_tail_gives_a_consistent_plan_and_binary_head(binary):
    data = fleet_instance(nv=6, nt=8)
    full = ChargingPlanner(6, 8, len(data.demand_charges), options=EXACT).solve(data)
    relaxed = ChargingPlanner(
        6, 8, len(data.demand_charges), options=EXACT, binary_periods=binary
    ).solve(data)
    assert relaxed.status == "optimal" and not relaxed.fallback, relaxed.message
    # every constraint holds on the rounded arrays
    check_plan(data, relaxed, exact=False, terms=False)
    # the relaxation can only lower the optimum
    assert relaxed.terms["objective"] <= full.terms["objective"] + gap_tol(full.terms["objective"])


def test_a_planner_rebuilds_its_model_only_when_the_fleet_changes():
    data = fleet_instance(nv=3, nt=4)
    planner = ChargingPlanner(3, 4, len(data.demand_charges), options=EXACT)
    planner.solve(data)
    model = planner.model
    planner.solve(replace(data, price_per_kwh=[p * 2 for p in data.price_per_kwh]))
    assert planner.model is model
    bigger = [replace(v, capacity_kwh=v.capacity_kwh * 2) for v in data.vehicles]
    again = planner.solve(replace(data, vehicles=bigger))
    assert planner.model is not model
    assert again.terms["objective"] == pytest.approx(
        solve_fresh(replace(data, vehicles=bigger)).terms["objective"], abs=1e-6
    )


@pytest.mark.parametrize("solver", ["highs", "glpk"])
@pytest.mark.parametrize("block", [1, 3, 8])
def test_relax_and_fix_gives_a_whole_binary_plan_no_better_than_the_milp(block, solver):
    data = fleet_instance(nv=6, nt=8)
    options = replace(EXACT, solver=solver)
    full = solve_fresh(data, options)
    planner = ChargingPlanner(6, 8, len(data.demand_charges), options=options, binary_periods=block)
    plan = planner.solve_relax_and_fix(data)
    assert plan.status == "optimal" and not plan.fallback, plan.message
    # every period is binary in the end: the terms follow from the plan's arrays
    check_plan(data, plan, exact=False)
    # fixing blocks in turn restricts the MILP: never better than its optimum
    objective = full.terms["objective"]
    assert plan.terms["objective"] >= objective - gap_tol(objective)
    if block >= 8:  # one block: the MILP itself
        assert plan.terms["objective"] == pytest.approx(objective, abs=gap_tol(objective))


def test_after_relax_and_fix_a_planner_solves_rolling_problems_as_a_fresh_one():
    data = fleet_instance(nv=6, nt=8)
    planner = ChargingPlanner(6, 8, len(data.demand_charges), options=EXACT, binary_periods=2)
    planner.solve_relax_and_fix(data)
    again = planner.solve(changed_prices(data))
    fresh = ChargingPlanner(6, 8, len(data.demand_charges), options=EXACT, binary_periods=2).solve(
        changed_prices(data)
    )
    assert again.terms["objective"] == pytest.approx(fresh.terms["objective"], abs=1e-6)
    assert not any(planner.model.x[v, t].fixed for v in range(6) for t in range(8))


def test_relax_and_fix_on_an_infeasible_instance_falls_back_and_restores_the_model():
    data = infeasible(simple_instance())
    planner = ChargingPlanner(
        len(data.vehicles), data.periods, len(data.demand_charges), binary_periods=1
    )
    plan = planner.solve_relax_and_fix(data)
    assert plan.status == "fcfs" and plan.fallback and plan.message
    assert not any(var.fixed for var in planner.model.x.values())


def lp_relaxation_objective(data: PlanInput) -> float:
    """The optimum with every plug-in decision relaxed to [0, 1]."""
    planner = ChargingPlanner(len(data.vehicles), data.periods, len(data.demand_charges), EXACT)
    planner.update(data)
    for var in planner.model.x.values():
        var.domain = pyo.UnitInterval
    status, message = planner._run_solver()
    assert status == "optimal", message
    return pyo.value(planner.model.objective)


def mixed_power(data: PlanInput) -> PlanInput:
    """``data`` with vehicles of two power limits (the grid share goes by power)."""
    vehicles = [
        replace(v, max_power_kw=2.0) if i % 3 == 0 else v for i, v in enumerate(data.vehicles)
    ]
    return replace(data, vehicles=vehicles)


@pytest.mark.parametrize("solver", ["highs", "glpk"])
@pytest.mark.parametrize(("seed", "block"), [(3, 1), (4, 3), (5, 4)])
def test_fleet_relax_and_fix_lies_between_the_lp_relaxation_and_the_milp(seed, block, solver):
    """Integral fleet counts with relaxed vehicles, in one block: a relaxation of the
    per-vehicle MILP (integral decisions give integral counts) and a restriction of its LP
    relaxation. In several blocks: a restriction of the one-block solve."""
    data = mixed_power(fleet_instance(nv=6, nt=8, seed=seed))
    options = replace(EXACT, solver=solver)

    def fleet_plan(binary: int) -> Plan:
        planner = ChargingPlanner(6, 8, len(data.demand_charges), options, binary_periods=binary)
        plan = planner.solve_relax_and_fix(data, fleet=True)
        assert plan.status == "optimal" and not plan.fallback, plan.message
        check_fleet_plan(data, plan)
        return plan

    whole = fleet_plan(8).terms["objective"]
    milp = solve_fresh(data, options).terms["objective"]
    assert lp_relaxation_objective(data) - TOL <= whole <= milp + gap_tol(milp)
    assert fleet_plan(block).terms["objective"] >= whole - gap_tol(whole)


def check_fleet_plan(data: PlanInput, plan: Plan) -> None:
    """A fleet-level plan keeps every per-vehicle bound on its arrays (the vehicles chosen
    for the solved counts, neediest first), within the ports and the site limit."""
    check_plan(data, plan, exact=False, required_is_hard=False, terms=False)
    for v, veh in enumerate(data.vehicles):
        top = veh.max_soc * veh.capacity_kwh
        assert np.all(plan.energy_kwh[v][plan.plugged[v]] <= top + TOL), v


def test_a_fleet_plan_gives_each_count_to_the_neediest_free_vehicles():
    data = mixed_power(fleet_instance(nv=6, nt=8, seed=4))
    planner = ChargingPlanner(6, 8, len(data.demand_charges), EXACT, binary_periods=8)
    plan = planner.solve_relax_and_fix(data, fleet=True)
    free = free_periods_matrix(data)
    energy = np.array([v.soc * v.capacity_kwh for v in data.vehicles])
    top = np.array([v.max_soc * v.capacity_kwh for v in data.vehicles])
    knee = np.array([v.knee_soc * v.capacity_kwh for v in data.vehicles])
    cap = np.array([v.capacity_kwh for v in data.vehicles])
    plugged = np.array([v.plugged for v in data.vehicles])
    for t in range(data.periods):
        chosen = plan.plugged[:, t]
        able = free[:, t] & (energy < top - 1e-6)
        # a left-out free vehicle that is not a continuing session is no needier than a
        # newly chosen one
        new = chosen & ~(plugged & (energy < knee))
        left = able & ~chosen & ~plugged
        if new.any() and left.any():
            assert (energy / cap)[left].min() >= (energy / cap)[new].max() - 1e-9, t
        energy = plan.energy_kwh[:, t]
        plugged = chosen


def free_periods_matrix(data: PlanInput) -> np.ndarray:
    return np.array([free_periods(v, data) for v in data.vehicles])


def test_a_fleet_plan_refuses_periods_of_different_lengths():
    data = block_periods(fleet_instance(nv=3, nt=4), [15.0, 15.0, 30.0])
    planner = ChargingPlanner(3, 3, len(data.demand_charges), EXACT)
    with pytest.raises(ValueError, match="period_lengths_min.*fleet-level"):
        planner.solve_relax_and_fix(data, fleet=True)


def rounded_fleet_plan(data: PlanInput, options: SolverOptions, blocks: int = 1) -> Plan:
    nt = data.periods
    planner = ChargingPlanner(
        len(data.vehicles), nt, len(data.demand_charges), options, binary_periods=nt // blocks
    )
    plan = planner.solve_relax_and_fix(data, fleet=True)
    assert planner.model.component("n") is None
    assert not any(var.fixed for var in planner.model.x.values())
    return plan


@pytest.mark.parametrize("solver", ["highs", "glpk"])
@pytest.mark.parametrize(("seed", "round_block_min"), [(3, 360.0), (4, 30.0), (5, 45.0)])
def test_a_fleet_plan_by_rounding_up_keeps_every_bound_within_its_gap_of_the_lp_bound(
    seed, round_block_min, solver, monkeypatch
):
    """Counts rounded up from the LP relaxation (in one block or several): a fleet plan that
    keeps every bound, between its LP bound and that bound plus the accepted gap, and no
    better than the exact fleet MILP (of which it is a feasible solution)."""
    monkeypatch.setattr(planner_module, "ROUND_BLOCK_MIN", round_block_min)
    data = mixed_power(fleet_instance(nv=6, nt=8, seed=seed))
    options = replace(EXACT, solver=solver)
    rounded = rounded_fleet_plan(data, replace(options, rounding_gap=0.5))
    assert rounded.status == "optimal" and not rounded.fallback, rounded.message
    check_fleet_plan(data, rounded)
    lp = lp_relaxation_objective(data)
    objective = rounded.terms["objective"]
    assert rounded.terms["lp_bound"] == pytest.approx(lp, abs=gap_tol(lp))
    assert lp - TOL <= objective <= lp + 0.5 * abs(objective)
    exact = rounded_fleet_plan(data, replace(options, rounding_gap=0.0))
    assert lp - TOL <= exact.terms["objective"] <= objective + gap_tol(objective)


@pytest.mark.parametrize("solver", ["highs", "glpk"])
def test_a_rounded_fleet_plan_outside_its_gap_gives_way_to_the_milp(solver):
    data = mixed_power(fleet_instance(nv=6, nt=8, seed=4))
    options = replace(EXACT, solver=solver)
    rounded = rounded_fleet_plan(data, replace(options, rounding_gap=0.5))
    objective, bound = rounded.terms["objective"], rounded.terms["lp_bound"]
    gap = (objective - bound) / abs(objective)
    assert gap > 1e-5  # this instance's rounded counts cost something
    strict = rounded_fleet_plan(data, replace(options, rounding_gap=gap / 2))
    assert "lp_bound" not in strict.terms
    assert strict.status == "optimal" and not strict.fallback
    check_fleet_plan(data, strict)
    assert strict.terms["objective"] <= objective + gap_tol(objective)
    # the MILP's counts give the same plan as the exact fleet solve
    exact = rounded_fleet_plan(data, options)
    assert strict.terms["objective"] == pytest.approx(exact.terms["objective"], abs=1e-6)


@pytest.mark.parametrize("rounding_gap", [None, 0.5])
def test_after_a_fleet_solve_a_planner_solves_rolling_problems_as_a_fresh_one(rounding_gap):
    """By LP rounding (its gap 1.6e-4 accepted) or by the counts' MILPs (refused at 1e-6)."""
    data = mixed_power(fleet_instance(nv=6, nt=8, seed=4))
    options = replace(EXACT, rounding_gap=rounding_gap)
    planner = ChargingPlanner(6, 8, len(data.demand_charges), options=options, binary_periods=2)
    plan = planner.solve_relax_and_fix(data, fleet=True)
    assert ("lp_bound" in plan.terms) == (rounding_gap is not None)
    assert planner.model.component("n") is None
    again = planner.solve(changed_prices(data))
    fresh = ChargingPlanner(6, 8, len(data.demand_charges), options=EXACT, binary_periods=2).solve(
        changed_prices(data)
    )
    assert again.terms["objective"] == pytest.approx(fresh.terms["objective"], abs=1e-6)
    assert all(planner.model.x[v, t].domain is pyo.Binary for v in range(6) for t in range(2))


def test_fleet_relax_and_fix_on_an_infeasible_instance_falls_back_and_restores_the_model():
    data = infeasible(simple_instance())
    planner = ChargingPlanner(
        len(data.vehicles), data.periods, len(data.demand_charges), binary_periods=1
    )
    plan = planner.solve_relax_and_fix(data, fleet=True)
    assert plan.status == "fcfs" and plan.fallback and plan.message
    assert planner.model.component("n") is None
    assert not any(var.fixed for var in planner.model.x.values())


def test_a_vehicle_drained_below_empty_by_its_forecast_is_priced_not_infeasible():
    """A vehicle that may not charge and whose forecast work exceeds its stored energy: the
    plan still solves (flexible's lead-acid forklifts made every such re-plan infeasible)."""
    data = simple_instance()
    drained = replace(data.vehicles[0], soc=0.25, free_windows=[], work_kwh=[1.5] * 4)
    data = replace(data, vehicles=[drained, data.vehicles[1]])
    plan = solve_fresh(data)
    assert not plan.fallback and plan.status == "optimal"
    assert plan.energy_kwh[0, -1] == pytest.approx(2.5 - 6.0)  # below zero, as forecast
    assert not plan.plugged[0].any()
    assert plan.terms["soc_slack_kwh"] > 0


# ------------------------------------------------------------------ longer tail periods
@pytest.mark.parametrize(
    ("periods", "fine", "tail", "expected"),
    [
        (16, 4, 60.0, [15.0] * 4 + [60.0] * 3),
        (10, 4, 60.0, [15.0] * 4 + [60.0, 30.0]),
        (3, 4, 60.0, [15.0] * 3),
        (6, 2, 15.0, [15.0] * 6),
        (96, 4, 120.0, [15.0] * 4 + [120.0] * 11 + [60.0]),
    ],
)
def test_coarse_tail_lengths_keep_the_horizon(periods, fine, tail, expected):
    lengths = coarse_tail_lengths(periods, 15.0, fine, tail)
    assert lengths == expected
    assert sum(lengths) == periods * 15.0


@pytest.mark.parametrize("tail", [0.0, -60.0, 20.0])
def test_a_tail_that_is_no_multiple_of_the_period_is_refused(tail):
    with pytest.raises(ValueError, match=r"tail_period_min = .*multiple of period_min = 15"):
        coarse_tail_lengths(16, 15.0, 4, tail)


def coarse(data: PlanInput, fine: int, factor: int) -> PlanInput:
    """``data`` with every period from ``fine`` on ``factor`` times longer (its per-period
    values now belong to the longer periods)."""
    n, fine = data.periods, min(fine, data.periods)
    return replace(
        data, period_lengths_min=[data.period_min] * fine + [data.period_min * factor] * (n - fine)
    )


def collapse(plan: Plan, reps: list[int]) -> Plan:
    """The plan of the longer periods from a plan handed back in periods of ``period_min``."""
    first = np.concatenate([[0], np.cumsum(reps)[:-1]]).astype(int)
    last = np.cumsum(reps).astype(int) - 1
    return Plan(
        plan.status,
        plan.plugged[:, first],
        np.add.reduceat(plan.grid_kwh, first, axis=1),
        plan.energy_kwh[:, last],
        [[row[t] for t in first] for row in plan.ports],
        plan.terms,
    )


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    nv=st.integers(1, 4),
    nt=st.integers(2, 6),
    fine=st.integers(0, 3),
    factor=st.integers(2, 4),
    nd=st.integers(0, 2),
    limit=st.booleans(),
)
def test_a_plan_with_longer_tail_periods_respects_every_constraint(
    seed, nv, nt, fine, factor, nd, limit
):
    """Every constraint holds in the longer periods, and the plan comes back in periods of
    ``period_min``: decisions and ports repeated, grid energy spread evenly, energy
    interpolated between the longer periods' ends."""
    # no required energies: the instance's windows cover its own periods, rarely the longer
    # ones, so a requirement would often be out of reach
    instance = random_instance(np.random.default_rng(seed), nv, nt, nd, limit, required_p=0.0)
    data = coarse(instance, fine, factor)
    reps = [1] * min(fine, nt) + [factor] * (nt - min(fine, nt))
    plan = solve_fresh(data)
    assert plan.status in ("optimal", "feasible"), plan.message
    assert plan.plugged.shape == (nv, sum(reps))
    assert all(len(row) == sum(reps) for row in plan.ports)
    check_plan(data, collapse(plan, reps), exact=plan.status == "optimal")
    k = 0
    e_prev = np.array([v.soc * v.capacity_kwh for v in data.vehicles])
    for r in reps:
        block = slice(k, k + r)
        assert (plan.plugged[:, block] == plan.plugged[:, [k]]).all()
        assert [row[block] for row in plan.ports] == [[row[k]] * r for row in plan.ports]
        np.testing.assert_allclose(plan.grid_kwh[:, block], plan.grid_kwh[:, [k]] * np.ones(r))
        end = plan.energy_kwh[:, k + r - 1]
        steps = e_prev[:, None] + (end - e_prev)[:, None] * (np.arange(1, r + 1) / r)
        np.testing.assert_allclose(plan.energy_kwh[:, block], steps, atol=1e-9)
        e_prev, k = end, k + r


def test_periods_of_one_length_given_explicitly_plan_as_the_default():
    data = fleet_instance(nv=4, nt=6)
    explicit = replace(data, period_lengths_min=[data.period_min] * data.periods)
    a, b = solve_fresh(data), solve_fresh(explicit)
    assert a.terms["objective"] == pytest.approx(b.terms["objective"], abs=1e-9)
    np.testing.assert_array_equal(a.plugged, b.plugged)


def test_longer_periods_equal_a_problem_with_that_period_length():
    """Periods of 30 minutes given as lengths plan as a problem whose period_min is 30."""
    data = simple_instance()  # four 30-minute periods
    as_lengths = replace(data, period_min=15.0, period_lengths_min=[30.0] * 4)
    a, b = solve_fresh(data), solve_fresh(as_lengths)
    assert b.terms["objective"] == pytest.approx(a.terms["objective"], abs=1e-7)
    np.testing.assert_array_equal(collapse(b, [2] * 4).plugged, a.plugged)
    np.testing.assert_allclose(collapse(b, [2] * 4).grid_kwh, a.grid_kwh, atol=1e-7)


@pytest.mark.parametrize(
    "lengths", [[30.0, 30.0, 30.0], [30.0, 30.0, 30.0, -30.0], [30.0, 30.0, 30.0, 20.0]]
)
def test_bad_period_lengths_name_the_field(lengths):
    data = replace(simple_instance(), period_lengths_min=lengths)
    with pytest.raises(ValueError, match="period_lengths_min"):
        solve_fresh(data)


def test_the_hierarchical_planner_refuses_periods_of_different_lengths():
    data = coarse(fleet_instance(nv=4, nt=6), 2, 2)
    from agentev.optimization.hierarchical import HierarchicalPlanner

    planner = HierarchicalPlanner(4, 6, len(data.demand_charges))
    with pytest.raises(ValueError, match="period_lengths_min.*one length"):
        planner.solve(data)


def test_a_fallback_with_longer_periods_shifts_the_previous_plan_in_periods_of_period_min():
    data = coarse(simple_instance(), 1, 2)  # 30 min, then three 60-minute periods
    planner = ChargingPlanner(2, 4, options=EXACT)
    first = planner.solve(data)
    assert first.status == "optimal" and first.plugged.shape == (2, 7)
    plan = planner.solve(infeasible(data), elapsed_periods=2)
    assert plan.status == "previous" and plan.plugged.shape == (2, 7)
    np.testing.assert_array_equal(plan.plugged[:, :5], first.plugged[:, 2:])
    assert not plan.plugged[:, 5:].any()
