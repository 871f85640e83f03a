r"""Two honest references, both linear programmes with perfect knowledge.

**A lower bound of the weighted objective** (:func:`objective_lower_bound`). For one
scenario and seed, :math:`J_{lb}` is at most the weighted objective :math:`J`
(:mod:`agentev.objective`) of *every* run of that scenario and seed, whatever its charging
strategy. It is the optimum of a relaxation in which the fleet is one battery per
vehicle type's power, charging is fluid and tasks may be delivered as early as their work
allows. A strategy's ``gap_to_lower_bound`` :math:`(J - J_{lb}) / J_{lb}` is therefore never
negative; it is an upper estimate of how far the strategy is from the best possible run.

**The cheapest bill of a run's own operations** (:func:`cheapest_bill`). From a run's log:
the lowest bill (``energy_cost_adjusted + demand_charge``) at which its vehicles' logged
consumption could have been charged, each vehicle plugged in only while it was not carrying
a task. It is at most the run's own bill (the run's charging is one of the plans it ranges
over), so ``cost_fcfs - cheapest_bill(fcfs)`` is the saving that charging decisions alone
could have made on ``fcfs``'s day, and ``savings_captured`` measures a strategy against it.

Periods are the tariff's clock-aligned quarter hours :math:`s` of :math:`n_s` minutes
(15, the last one shorter), ending at :math:`\tau_s`; the run ends at :math:`T`. Samples
:math:`m = 1..T` are the minute ends at which the run log counts open tasks and working
vehicles.

The lower bound's relaxation
----------------------------

Data: vehicle types :math:`j` with :math:`N_j` vehicles, charging power
:math:`\bar P_j` (the vehicle's, at most the strongest port), efficiency :math:`\eta_j`,
lowest consumption power :math:`p_j` (the smallest of its idle, driving and handling
powers); fleet size :math:`N`, ports :math:`N^{port}`, stored energy at the start
:math:`E^0` and at most :math:`\bar E` (every battery at ``max_soc``). Task :math:`i`
is released at :math:`\rho_i` in period :math:`r_i`; its work (loading, driving loaded,
unloading) takes at least :math:`w_i` minutes and at least :math:`e_i` kWh above the
vehicles' lowest power (at most :math:`\hat e_i`), the minimum (maximum) over the types;
it cannot be delivered before :math:`f_i = \rho_i + w_i`.

Variables: :math:`G_{js}` grid energy and :math:`X_{js}` mean plugged-in vehicles of type
:math:`j`; :math:`E_s \in [0, \bar E]` the fleet's stored energy at :math:`\tau_s`;
:math:`R_s` task energy and :math:`U_s \ge 0` any other consumption above the lowest power;
:math:`z_{ik} \in [0, 1]` task :math:`i` delivered by :math:`\tau_{r_i + k}` for
:math:`k < K` (its window, ``WINDOW_PERIODS``), :math:`y_i` delivered by :math:`T`;
:math:`q_s` shortfall (vehicle-minutes), :math:`\sigma_s, \epsilon_s` sessions started and
ended, :math:`P_d` the peak of demand charge :math:`d`.

.. math::

    E_s &= E_{s-1} + \textstyle\sum_j \eta_j G_{js} - \big(n_s \sum_j N_j p_j / 60 + R_s
        + U_s\big) &\text{(one battery)}\\
    G_{js} &\le \bar P_j X_{js} n_s / 60, \quad X_{js} \le N_j, \quad
        \textstyle\sum_j X_{js} \le N^{port}, \quad \sum_j G_{js} \le (L - B_s) n_s / 60\\
    \textstyle\sum_{s' \le s} R_{s'} &\ge \textstyle\sum_i e_i\, z_{i, s - r_i},
        \quad \sum_{s' \le s} R_{s'} \le \sum_{i: \rho_i < \tau_s} \hat e_i
        &\text{(work is done after release, before delivery)}\\
    \textstyle\sum_i w_i\, z_{i, s - r_i} &\le \textstyle\sum_{s' \le s} n_{s'}
        (N - \sum_j X_{js'}) &\text{(a vehicle works on one task, never plugged in)}\\
    q_s &\ge O_s - n_s N + n_s \textstyle\sum_j X_{js} - \sigma_s - \epsilon_s
        &\text{(open tasks minus working vehicles)}\\
    \sigma_s &\ge X_s - X_{s-1}, \quad \epsilon_s \ge X_{s-1} - X_s, \quad
        \textstyle\sum_{s' \le s} (\epsilon_{s'} - \sigma_{s'}) \le 0,
        \quad X_s = \sum_j X_{js}, X_{-1} = 0\\
    P_d &\ge B_s + 60 \textstyle\sum_j G_{js} / n_s \quad (s \text{ in } d\text{'s window})

with :math:`z_{ik}` non-decreasing in :math:`k`, zero while :math:`f_i > \tau_{r_i+k}`,
:math:`z_{i,K-1} \le y_i \le [f_i \le T]`, and (in the cumulative sums) :math:`z_{i,k}`
taken as :math:`z_{i,K-1}` beyond the window and the late deliveries
:math:`y_i - z_{i,K-1}` added to the last period's task energy and work. The open-task
minutes of period :math:`s` are

.. math::

    O_s = \sum_i \#\{m \in (\tau_{s-1}, \tau_s]: \rho_i < m \le f_i\}
        + \sum_{i: 0 \le s - r_i < K} u_{is} (1 - z_{i,s-r_i})
        + n_s \sum_{i: r_i + K \le s} (1 - y_i),

:math:`u_{is}` the samples of period :math:`s` after :math:`f_i`. The objective is
:math:`J` with the energy term :math:`\sum_s (\pi_s - \bar\pi) \sum_j G_{js}
+ \bar\pi D / \eta_{max} + \sum_d r_d P_d` (:math:`D` all consumption, :math:`\bar\pi` the
run's time-mean price, :math:`r_d` the pro-rated rate), the downtime term
:math:`\sum_s q_s / 60` and the utilisation term :math:`\sum_s \sigma_s +
\sum_{js} X_{js} n_s / 60`.

**Why it is a lower bound.** Take any run of the scenario and seed (same tasks, same initial
states, any strategy) in which no battery runs empty (checked by :func:`battery_emptied`:
an empty battery stops consuming, the only way a vehicle uses less than :math:`p_j`). Read
off it :math:`G_{js}` (its grid energy), :math:`X_{js}` (its plugged-in minutes / :math:`n_s`),
:math:`E_s` (its stored energy), :math:`R_s` (the energy of its loaded drives and handling
above :math:`p_j`, which is at least :math:`e_i` and at most :math:`\hat e_i` per task, spent
between release and delivery), :math:`U_s` (the rest of its consumption above :math:`p_j`),
:math:`z_{ik}, y_i` from its delivery times, :math:`\sigma_s, \epsilon_s` its session starts
and ends, :math:`q_s` its shortfall, :math:`P_d` its peaks. Each constraint then holds:

* the battery row sums the exact per-vehicle identity ``change = charged - consumed``, and
  a vehicle consumes at least :math:`p_j` in every state;
* a port serves one vehicle at a time and the site limit is enforced by the site's power
  sharing; grid energy flows only while plugged in, at most at :math:`\bar P_j`;
* a delivered task's loaded drive and handling lie between its release and delivery; a
  vehicle carrying a task is not plugged in, so task work fits in the unplugged
  vehicle-minutes;
* at sample :math:`m` the log counts task :math:`i` open if :math:`\rho_i < m \le` its
  delivery, and delivery :math:`\ge f_i`: the relaxation counts it only until :math:`f_i`,
  or until the end of the period it is delivered in (or of its window). The working
  vehicles are at most :math:`N` minus those charging, and the samples at which a vehicle is
  charging number at least its plugged-in minutes less one per session start and end in the
  period;
* the plugged-in count rises only by sessions starting (an average over a period moves by
  no more than the minute counts do), and every session ends after it starts;
* the demand charge is the pro-rated rate times the highest quarter-hour mean site power in
  its window;
* the energy cost :math:`\sum \pi G - \bar\pi \sum_v \Delta E_v / \eta_v` equals
  :math:`\sum (\pi - \bar\pi) G + \bar\pi \sum_v D_v / \eta_v \ge` the relaxation's energy
  term, because :math:`\Delta E_v = \eta_v G_v - D_v`.

The run's values are therefore a feasible point, at which the relaxation's objective is at
most the run's :math:`J` (its shortfall is the sum of the per-minute positive parts, at least
the positive part of their sum; everything else is equal or smaller). So the relaxation's
minimum is at most :math:`J`. What it leaves out, and why it is below the best run: empty
drives (to the pick-up, to park, to a charger), the CC-CV taper, which vehicle holds which
energy, lead-acid charging rules, queueing and waiting at docks, and that a vehicle must be
at a charger to charge.

The cheapest bill's programme
-----------------------------

Per vehicle :math:`v` and period :math:`s`: grid energy :math:`0 \le g_{vs} \le \bar P_v a_{vs}
n_s / 60` (:math:`a_{vs}` the share of the period in which the log shows it not carrying a
task, pick-up to delivery), energy :math:`E_{vs} = E_{v,s-1} + \eta_v g_{vs} - c_{vs}` with
:math:`c_{vs}` its logged consumption, kept within ``max_soc`` and ``min_soc`` (or the run's
own lowest energy, if lower); ports :math:`\sum_v 60 g_{vs} / (\bar P_v n_s) \le N^{port}`,
the site limit and the demand peaks as above; minimise the run's bill
:math:`\sum_s \pi_s \sum_v g_{vs} - \bar\pi \sum_v (E_{v,S-1} - E^0_v) / \eta_v + \sum_d r_d
P_d`. The run's own charging is a feasible point with the run's bill as its value.
"""

# ruff: noqa: N806  (the variables are named as in the formulation)
from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from agentev.config import DemandCharge
from agentev.optimization.lp import INF, LinearProgram
from agentev.tariff import DAYS_PER_MONTH, DEMAND_INTERVAL_MIN

#: Version of the lower bound's formulation (it keys cached bounds).
BOUND_VERSION = 1
#: Periods after its release period in which a task's delivery is modelled one by one; a
#: task not delivered by then counts as open through them and is only known to be delivered
#: by the end, or not at all.
WINDOW_PERIODS = 8


@dataclass(frozen=True)
class VehicleGroup:
    """Vehicles of one type, as the lower bound sees them.

    Attributes:
        count: Number of vehicles.
        max_energy_kwh: Their battery energy at ``max_soc``, summed (kWh).
        efficiency: Charging efficiency.
        power_kw: Grid-side charging power of one vehicle (kW), at most the strongest port.
        min_power_kw: Lowest consumption power of any of its states (kW).
        speed_mps: Driving speed (m/s).
        handling_min: One loading or unloading (minutes).
        handling_kw: Power while handling (kW).
        loaded_kw: Power while driving loaded (kW).
    """

    count: int
    max_energy_kwh: float
    efficiency: float
    power_kw: float
    min_power_kw: float
    speed_mps: float
    handling_min: float
    handling_kw: float
    loaded_kw: float


@dataclass(frozen=True)
class BoundInput:
    """Everything the lower bound needs (plain data; minutes, kW, kWh).

    Attributes:
        duration_min: Length of the run :math:`T` (whole minutes).
        price_per_kwh: Price of each minute ``m = 1..T`` (currency/kWh).
        base_load_kw: Base load of each minute (kW).
        grid_limit_kw: Site connection limit (kW) or None.
        demand_charges: The tariff's demand charges.
        groups: The fleet by vehicle type.
        initial_energy_kwh: Stored energy at the start, summed over the fleet (kWh).
        ports: Charger ports in use.
        release_min: Release time of each task released before the end.
        loaded_m: Loaded driving distance of each of those tasks (m).
        weights: ``alpha_energy``, ``alpha_downtime``, ``alpha_utilization`` and the
            normalisers ``energy_per_h``, ``downtime_per_h``, ``utilization_per_h``.
    """

    duration_min: int
    price_per_kwh: np.ndarray
    base_load_kw: np.ndarray
    grid_limit_kw: float | None
    demand_charges: tuple[DemandCharge, ...]
    groups: tuple[VehicleGroup, ...]
    initial_energy_kwh: float
    ports: int
    release_min: np.ndarray
    loaded_m: np.ndarray
    weights: dict[str, float]


@dataclass
class LowerBound:
    """The lower bound's optimum.

    Attributes:
        objective: :math:`J_{lb}`, at most the ``weighted_objective`` of every run.
        terms: The relaxation's terms at its optimum: ``energy_cost`` (its energy term,
            currency), ``shortfall_vh``, ``sessions``, ``occupied_port_h``,
            ``consumed_kwh``, ``grid_kwh``. These are not bounds on the runs' metrics one by
            one: only their weighted sum is.
        solve_s: Wall-clock time of building and solving (s).
    """

    objective: float
    terms: dict[str, float] = field(default_factory=dict)
    solve_s: float = 0.0


class _Periods:
    """Clock-aligned quarter hours of a run of ``duration_min`` minutes."""

    def __init__(self, duration_min: int) -> None:
        step = DEMAND_INTERVAL_MIN
        self.count = -(-duration_min // step)
        self.start = np.arange(self.count) * step
        self.end = np.minimum(self.start + step, duration_min)
        self.n = self.end - self.start

    def per_period(self, per_minute: np.ndarray) -> np.ndarray:
        """The value of each period of a quantity constant within it (minutes 1..T)."""
        return np.asarray(per_minute, dtype=float)[self.start]

    def in_window(self, charge: DemandCharge) -> np.ndarray:
        """Periods a demand charge looks at (as :func:`agentev.tariff.demand_charge`)."""
        hour = (self.start / 60.0) % 24.0
        return (hour >= charge.start_h) & (hour < charge.end_h)


def _demand_rates(charges, duration_min: int) -> list[float]:
    days = duration_min / 1440.0
    return [c.rate_per_kw_month * days / DAYS_PER_MONTH for c in charges]


def bound_input(model) -> BoundInput:
    """The lower bound's data for a model (built, not necessarily run).

    Only what every strategy of the same scenario and seed shares is read: the task trace,
    the initial states of charge, the fleet, chargers, site and tariff.
    """
    from agentev.outputs import objective_settings

    cfg = model.config
    duration = model.duration_min
    steps = np.arange(1, duration + 1)
    tariff = model.tariff
    port_kw = max(c.spec.power_kw for c in model.chargers.values())
    groups: dict[str, list] = {}
    for v in model.vehicles:
        groups.setdefault(v.vtype.name, []).append(v)
    fleet = []
    for vehicles in groups.values():
        vt = vehicles[0].vtype
        fleet.append(
            VehicleGroup(
                count=len(vehicles),
                max_energy_kwh=len(vehicles) * vt.max_soc * vt.capacity_kwh,
                efficiency=vt.charging_efficiency,
                power_kw=min(vt.max_charge_power_kw, port_kw),
                min_power_kw=min(vt.idle_kw, vt.drive_empty_kw, vt.drive_loaded_kw, vt.handling_kw),
                speed_mps=vt.speed_mps,
                handling_min=vt.handling_min,
                handling_kw=vt.handling_kw,
                loaded_kw=vt.drive_loaded_kw,
            )
        )
    layout = model.layout
    tasks = [t for t in model.task_trace if t.release_min < duration]
    cells = layout.station_cells
    return BoundInput(
        duration_min=duration,
        price_per_kwh=np.array([tariff.price(int(m)) for m in steps]),
        base_load_kw=np.array([tariff.base_load_kw(int(m)) for m in steps]),
        grid_limit_kw=cfg.site.grid_limit_kw,
        demand_charges=tuple(cfg.tariff.demand_charges),
        groups=tuple(fleet),
        initial_energy_kwh=float(sum(v.initial_energy_kwh for v in model.vehicles)),
        ports=int(model.num_ports),
        release_min=np.array([t.release_min for t in tasks], dtype=float),
        loaded_m=np.array(
            [layout.distance_m(cells[t.pickup], cells[t.dropoff]) for t in tasks], dtype=float
        ),
        weights=objective_settings(model),
    )


def _task_work(data: BoundInput) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per task: least work minutes, least and most energy above the lowest power (kWh)."""
    minutes, energy = [], []
    for g in data.groups:
        loaded_min = data.loaded_m / g.speed_mps / 60.0
        minutes.append(2.0 * g.handling_min + loaded_min)
        energy.append(
            (
                (g.loaded_kw - g.min_power_kw) * loaded_min
                + 2.0 * (g.handling_kw - g.min_power_kw) * g.handling_min
            )
            / 60.0
        )
    minutes, energy = np.array(minutes), np.array(energy)
    return minutes.min(axis=0), energy.min(axis=0), energy.max(axis=0)


def _samples_in(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Integer minute ends ``m`` with ``lo < m <= hi`` (0 where ``hi <= lo``)."""
    return np.maximum(0.0, np.floor(hi) - np.floor(lo)) * (hi > lo)


def objective_lower_bound(data: BoundInput, solver: str = "highs") -> LowerBound:
    """Solve the lower bound's relaxation (see the module docstring).

    Args:
        data: The scenario and seed's data (:func:`bound_input`).
        solver: ``"highs"`` or ``"glpk"``.

    Raises:
        LPError: if the relaxation is infeasible (then every run of the scenario and seed
            empties a battery) or the solver fails.
    """
    import time

    t0 = time.perf_counter()
    per = _Periods(data.duration_min)
    S, n = per.count, per.n.astype(float)
    T = float(data.duration_min)
    hours = T / 60.0
    w = data.weights
    w_e = w["alpha_energy"] / (w["energy_per_h"] * hours)
    w_d = w["alpha_downtime"] / (w["downtime_per_h"] * hours)
    w_u = w["alpha_utilization"] / (w["utilization_per_h"] * hours)
    price = per.per_period(data.price_per_kwh)
    base = per.per_period(data.base_load_kw)
    mean_price = float(np.mean(data.price_per_kwh))
    eta = np.array([g.efficiency for g in data.groups])
    eta_max = float(eta.max())
    counts = np.array([g.count for g in data.groups], dtype=float)
    fleet = float(counts.sum())
    J = len(data.groups)
    baseline = n * float(sum(g.count * g.min_power_kw for g in data.groups)) / 60.0

    lp = LinearProgram()
    # charging
    power = np.array([g.power_kw for g in data.groups])
    G = lp.variables((J, S), cost=w_e * (price - mean_price)[None, :])
    X = lp.variables((J, S), hi=np.repeat(counts[:, None], S, axis=1), cost=w_u * n[None, :] / 60)
    E = lp.variables((S,), hi=sum(g.max_energy_kwh for g in data.groups))
    R = lp.variables((S,), cost=w_e * mean_price / eta_max)
    U = lp.variables((S,), cost=w_e * mean_price / eta_max)
    lp.constant = w_e * mean_price / eta_max * float(baseline.sum())
    q = lp.variables((S,), cost=w_d / 60.0)
    start = lp.variables((S,), cost=w_u)
    stop = lp.variables((S,))
    rates = _demand_rates(data.demand_charges, data.duration_min)
    peak = lp.variables((len(rates),), cost=w_e * np.array(rates, dtype=float))

    rows = lp.rows(S, lo=-baseline, hi=-baseline)  # E_s - E_{s-1} - eta G + R + U = -base
    lp.terms(rows, E)
    lp.terms(rows[1:], E[:-1], -1.0)
    lp.terms(rows[None, :], G, -eta[:, None])
    lp.terms(rows, R)
    lp.terms(rows, U)
    lp.row_lo[-1][0] += data.initial_energy_kwh
    lp.row_hi[-1][0] += data.initial_energy_kwh
    rows = lp.rows(J * S, hi=0.0).reshape(J, S)  # G <= P X n / 60
    lp.terms(rows, G)
    lp.terms(rows, X, -power[:, None] * n[None, :] / 60.0)
    rows = lp.rows(S, hi=float(data.ports))
    lp.terms(rows[None, :], X)
    if data.grid_limit_kw is not None:
        headroom = np.maximum(0.0, data.grid_limit_kw - base) * n / 60.0
        rows = lp.rows(S, hi=headroom)
        lp.terms(rows[None, :], G)
    for d, charge in enumerate(data.demand_charges):
        window = np.flatnonzero(per.in_window(charge))
        rows = lp.rows(len(window), lo=base[window])
        lp.terms(rows, peak[d])
        lp.terms(rows[None, :], G[:, window], -60.0 / n[window][None, :])
    # sessions: starts >= rise of the plugged-in count, ends >= its fall, no end before start
    rows = lp.rows(S, lo=0.0)
    lp.terms(rows, start)
    lp.terms(rows[None, :], X, -1.0)
    lp.terms(rows[1:][None, :], X[:, :-1], 1.0)
    rows = lp.rows(S, lo=0.0)
    lp.terms(rows, stop)
    lp.terms(rows[None, :], X, 1.0)
    lp.terms(rows[1:][None, :], X[:, :-1], -1.0)
    tri = np.tril(np.ones((S, S)))
    rows = lp.rows(S, lo=0.0)
    si, sj = np.nonzero(tri)
    lp.terms(rows[si], start[sj], 1.0)
    lp.terms(rows[si], stop[sj], -1.0)

    # tasks
    work_min, e_lo, e_hi = _task_work(data)
    rel = data.release_min
    due = rel + work_min  # earliest delivery f_i
    first = np.floor(rel / DEMAND_INTERVAL_MIN).astype(int)
    nt = len(rel)
    K = WINDOW_PERIODS
    period = first[:, None] + np.arange(K)[None, :]  # [task, k]
    valid = period < S
    pk = np.where(valid, period, 0)
    end_k = np.where(valid, per.end[pk], T)
    start_k = np.where(valid, per.start[pk], T)
    z_hi = (valid & (due[:, None] <= end_k)).astype(float)
    z = lp.variables((nt, K), hi=z_hi)
    last = np.minimum(K, S - first) - 1  # last modelled k of each task
    y = lp.variables((nt,), hi=(due <= T).astype(float))
    # z non-decreasing in k; y >= z at the window's end (= where the window reaches the end)
    ii, kk = np.nonzero(valid[:, 1:])
    rows = lp.rows(len(ii), lo=0.0)
    lp.terms(rows, z[ii, kk + 1], 1.0)
    lp.terms(rows, z[ii, kk], -1.0)
    closes = first + K - 1 < S - 1  # window ends before the run: later open time counted
    rows = lp.rows(nt, lo=0.0, hi=np.where(closes, INF, 0.0))
    lp.terms(rows, y, 1.0)
    lp.terms(rows, z[np.arange(nt), last], -1.0)

    # cumulative task energy and work delivered: increments of z in the period they happen
    delivered_energy = lp.variables((S,), lo=-INF)
    delivered_work = lp.variables((S,), lo=-INF)
    for cum, weight in ((delivered_energy, e_lo), (delivered_work, work_min)):
        rows = lp.rows(S, lo=0.0, hi=0.0)  # cum_s - cum_{s-1} - sum weight (z_k - z_{k-1}) = 0
        lp.terms(rows, cum)
        lp.terms(rows[1:], cum[:-1], -1.0)
        vi, vk = np.nonzero(valid)
        lp.terms(rows[period[vi, vk]], z[vi, vk], -weight[vi])
        nxt = vk + 1 < K
        nxt &= valid[vi, np.minimum(vk + 1, K - 1)]
        lp.terms(rows[period[vi[nxt], vk[nxt]] + 1], z[vi[nxt], vk[nxt]], weight[vi[nxt]])
    late_energy = lp.variables((1,), lo=-INF)
    late_work = lp.variables((1,), lo=-INF)
    for late, weight in ((late_energy, e_lo), (late_work, work_min)):
        rows = lp.rows(1, lo=0.0, hi=0.0)  # late = sum weight (y - z_last)
        lp.terms(rows, late, 1.0)
        lp.terms(rows, y, -weight)
        lp.terms(rows, z[np.arange(nt), last], weight)
    # task energy spent by tau_s: at least what was delivered, at most what was released
    released = np.array([e_hi[rel < per.end[s]].sum() for s in range(S)])
    spent = lp.variables((S,), hi=released)
    rows = lp.rows(S, lo=0.0, hi=0.0)
    lp.terms(rows, spent)
    lp.terms(rows[1:], spent[:-1], -1.0)
    lp.terms(rows, R, -1.0)
    rows = lp.rows(S, lo=0.0)
    lp.terms(rows, spent)
    lp.terms(rows, delivered_energy, -1.0)
    lp.terms(rows[-1:], late_energy, -1.0)
    # task work fits in the unplugged vehicle-minutes
    plugged_min = lp.variables((S,))
    rows = lp.rows(S, lo=0.0, hi=0.0)
    lp.terms(rows, plugged_min)
    lp.terms(rows[1:], plugged_min[:-1], -1.0)
    lp.terms(rows[None, :], X, -n[None, :])
    rows = lp.rows(S, hi=fleet * per.end.astype(float))
    lp.terms(rows, delivered_work)
    lp.terms(rows, plugged_min)
    lp.terms(rows[-1:], late_work)

    # open-task minutes: forced until f_i, then open unless delivered
    forced = np.zeros(S)
    unforced = np.zeros(S)
    for k in range(K):
        ok = valid[:, k]
        s_k = period[ok, k]
        np.add.at(
            forced,
            s_k,
            _samples_in(np.maximum(rel[ok], start_k[ok, k]), np.minimum(due[ok], end_k[ok, k])),
        )
    u = np.where(valid, _samples_in(np.maximum(due[:, None], start_k), end_k), 0.0)
    np.add.at(unforced, pk[valid], u[valid])
    late_released = np.zeros(S)  # tasks whose window ended before s
    ends_at = first + K - 1
    closed = ends_at < S - 1
    np.add.at(late_released, ends_at[closed] + 1, 1.0)
    late_released = np.cumsum(late_released)
    late_delivered = lp.variables((S,))  # sum of y over tasks whose window ended before s
    rows = lp.rows(S, lo=0.0, hi=0.0)
    lp.terms(rows, late_delivered)
    lp.terms(rows[1:], late_delivered[:-1], -1.0)
    lp.terms(rows[ends_at[closed] + 1], y[closed], -1.0)
    rows = lp.rows(S, lo=forced + unforced + n * late_released - n * fleet)
    lp.terms(rows, q)
    lp.terms(rows[pk[valid]], z[valid], u[valid])
    lp.terms(rows, late_delivered, n)
    lp.terms(rows[None, :], X, -n[None, :])
    lp.terms(rows, start)
    lp.terms(rows, stop)

    res = lp.solve(solver)
    x = res.values
    grid_kwh = float(x[G].sum())
    consumed = float(baseline.sum() + x[R].sum() + x[U].sum())
    energy_cost = float(
        ((price - mean_price)[None, :] * x[G]).sum()
        + mean_price * consumed / eta_max
        + np.dot(rates, x[peak])
    )
    terms = {
        "energy_cost": energy_cost,
        "shortfall_vh": float(x[q].sum()) / 60.0,
        "sessions": float(x[start].sum()),
        "occupied_port_h": float((x[X] * n[None, :]).sum()) / 60.0,
        "consumed_kwh": consumed,
        "grid_kwh": grid_kwh,
    }
    return LowerBound(res.objective, terms, time.perf_counter() - t0)


@dataclass(frozen=True)
class Bill:
    """The cheapest bill's optimum (currency, kWh, kW).

    Attributes:
        bill: ``energy_cost - stored_credit + demand_charge``, as the run's metrics define it.
        energy_cost: Grid energy times its price.
        stored_credit: The stored-energy change valued at the run's mean price (the
            adjustment of ``energy_cost_adjusted``).
        demand_charge: Pro-rated demand charges.
        grid_kwh: Grid energy drawn.
        peak_kw: The highest peak of the demand charges' windows.
    """

    bill: float
    energy_cost: float
    stored_credit: float
    demand_charge: float
    grid_kwh: float
    peak_kw: float


_MEMO: dict[str, LowerBound] = {}


def _cache_dir() -> Path:
    root = os.environ.get("AGENTEV_CACHE_DIR")
    base = Path(root) if root else Path.home() / ".cache" / "agentev"
    return base / "lower-bound"


def lower_bound(model, solver: str | None = None) -> LowerBound:
    """:func:`objective_lower_bound` of a model's scenario and seed, cached.

    The bound depends only on the scenario (whatever the strategy) and the seed, so it is
    solved once and kept in memory and on disk (``$AGENTEV_CACHE_DIR/lower-bound``, default
    ``~/.cache/agentev/lower-bound``).

    Args:
        model: A built model (it need not have run).
        solver: ``"highs"`` or ``"glpk"``; None: the scenario's solver if it is one of them,
            else HiGHS.
    """
    import agentev

    if solver is None:
        solver = model.config.controller.solver
        solver = solver if solver in ("highs", "glpk") else "highs"
    config = replace(model.config, strategy="fcfs")
    text = repr((agentev.__version__, BOUND_VERSION, config, model.seed, solver))
    key = hashlib.sha256(text.encode()).hexdigest()[:24]
    if key in _MEMO:
        return _MEMO[key]
    path = _cache_dir() / f"{key}.json"
    try:
        stored = json.loads(path.read_text())
        bound = LowerBound(stored["objective"], stored["terms"], stored["solve_s"])
    except (OSError, ValueError, KeyError):
        bound = objective_lower_bound(bound_input(model), solver)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(asdict(bound)))
        os.replace(tmp, path)
    _MEMO[key] = bound
    return bound


def battery_emptied(timeseries: pd.DataFrame) -> bool:
    """Whether any battery of a run was empty at a minute's end (the bound's premise fails)."""
    return bool((timeseries["soc"] <= 0.0).any())


def cheapest_bill(
    timeseries: pd.DataFrame,
    grid: pd.DataFrame,
    tasks: pd.DataFrame,
    fleet: pd.DataFrame,
    demand_charges,
    ports: int,
    grid_limit_kw: float | None,
    solver: str = "highs",
) -> Bill:
    """The lowest bill at which a run's logged consumption could have been charged.

    See the module docstring. The bill is ``energy_cost_adjusted + demand_charge`` as
    :func:`agentev.metrics.compute_metrics` computes it.

    Args:
        timeseries: The run's ``timeseries.csv``.
        grid: Its ``grid.csv``.
        tasks: Its ``tasks.csv``.
        fleet: Per vehicle: ``vehicle_id``, ``capacity_kwh``, ``charging_efficiency``,
            ``min_soc``, ``max_soc`` and ``max_power_kw`` (grid-side, at most the strongest
            port).
        demand_charges: The tariff's demand charges.
        ports: Charger ports in use.
        grid_limit_kw: Site connection limit (kW) or None.
        solver: ``"highs"`` or ``"glpk"``.

    Returns:
        The optimum, with its bill (currency) and the bill's parts.
    """
    T = int(round(float(grid["time_min"].max())))
    per = _Periods(T)
    S, n = per.count, per.n.astype(float)
    grid = grid.sort_values("time_min")
    price = per.per_period(grid["price_per_kwh"].to_numpy())
    base = per.per_period(grid["base_load_kw"].to_numpy())
    mean_price = float(grid["price_per_kwh"].mean())
    fleet = fleet.set_index("vehicle_id")
    ids = list(fleet.index)
    V = len(ids)
    steps = timeseries[timeseries["time_min"] > 0]
    period_of = ((steps["time_min"].to_numpy() - 1) // DEMAND_INTERVAL_MIN).astype(int)
    consumed = (
        pd.DataFrame(
            {
                "v": steps["vehicle_id"].to_numpy(),
                "s": period_of,
                "c": steps["consumed_energy_kwh"].to_numpy(),
            }
        )
        .groupby(["v", "s"])["c"]
        .sum()
        .unstack(fill_value=0.0)
        .reindex(index=ids, columns=range(S), fill_value=0.0)
        .to_numpy()
    )
    energy = timeseries["soc"] * timeseries["capacity_kwh"]
    by_vehicle = energy.groupby(timeseries["vehicle_id"])
    first = by_vehicle.first().reindex(ids).to_numpy()
    lowest = by_vehicle.min().reindex(ids).to_numpy()
    cap = fleet["capacity_kwh"].to_numpy(dtype=float)
    eta = fleet["charging_efficiency"].to_numpy(dtype=float)
    top = fleet["max_soc"].to_numpy(dtype=float) * cap
    floor = np.minimum(fleet["min_soc"].to_numpy(dtype=float) * cap, lowest)
    pmax = fleet["max_power_kw"].to_numpy(dtype=float)

    # minutes of each period in which each vehicle carried a task (pick-up to delivery)
    busy = np.zeros((V, S))
    index = {vid: k for k, vid in enumerate(ids)}
    carried = tasks.dropna(subset=["pickup_min"])
    for vid, a, b in zip(
        carried["vehicle_id"], carried["pickup_min"], carried["delivery_min"].fillna(T), strict=True
    ):
        lo_, hi_ = np.maximum(per.start, a), np.minimum(per.end, b)
        busy[index[int(vid)]] += np.maximum(0.0, hi_ - lo_)
    free = np.clip(1.0 - busy / n[None, :], 0.0, 1.0)

    lp = LinearProgram()
    g = lp.variables((V, S), hi=pmax[:, None] * free * n[None, :] / 60.0, cost=price[None, :])
    E = lp.variables((V, S), lo=np.repeat(floor[:, None], S, 1), hi=np.repeat(top[:, None], S, 1))
    cost_end = np.zeros((V, S))
    cost_end[:, -1] = -mean_price / eta
    lp.cost[-1] = cost_end.ravel()
    lp.constant = mean_price * float((first / eta).sum())
    rates = _demand_rates(demand_charges, T)
    peak = lp.variables((len(rates),), cost=np.array(rates, dtype=float))
    rows = lp.rows(V * S, lo=-consumed.ravel(), hi=-consumed.ravel()).reshape(V, S)
    lp.terms(rows, E)
    lp.terms(rows[:, 1:], E[:, :-1], -1.0)
    lp.terms(rows, g, -eta[:, None])
    lp.row_lo[-1].reshape(V, S)[:, 0] += first
    lp.row_hi[-1].reshape(V, S)[:, 0] += first
    rows = lp.rows(S, hi=float(ports))
    lp.terms(rows[None, :], g, 60.0 / (pmax[:, None] * n[None, :]))
    if grid_limit_kw is not None and not (
        isinstance(grid_limit_kw, float) and math.isnan(grid_limit_kw)
    ):
        rows = lp.rows(S, hi=np.maximum(0.0, grid_limit_kw - base) * n / 60.0)
        lp.terms(rows[None, :], g)
    for d, charge in enumerate(demand_charges):
        window = np.flatnonzero(per.in_window(charge))
        rows = lp.rows(len(window), lo=base[window])
        lp.terms(rows, peak[d])
        lp.terms(rows[None, :], g[:, window], -60.0 / n[window][None, :])
    res = lp.solve(solver)
    x = res.values
    energy_cost = float((price[None, :] * x[g]).sum())
    demand = float(np.dot(rates, x[peak])) if rates else 0.0
    return Bill(
        bill=res.objective,
        energy_cost=energy_cost,
        stored_credit=energy_cost + demand - res.objective,
        demand_charge=demand,
        grid_kwh=float(x[g].sum()),
        peak_kw=float(x[peak].max()) if rates else 0.0,
    )
