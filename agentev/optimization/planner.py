r"""The charging planner: a Pyomo MILP over a rolling horizon, built once, re-solved often.

Formulation (vehicles :math:`v`, periods :math:`t = 0..T-1` of length :math:`\Delta` hours,
demand charges :math:`d`, CC-CV cuts :math:`k`):

Variables: :math:`x_{vt} \in \{0,1\}` plugged in; :math:`g_{vt} \ge 0` grid energy (kWh),
:math:`G_t = \sum_v g_{vt}`; :math:`E_{vt}` battery energy at the end of period :math:`t`
(kWh; free below, so a forecast that drains a battery is priced by the slacks rather than
making the plan infeasible); :math:`s_{vt} \ge 0` session start; :math:`u_{vt} \ge 0` energy
below ``min_soc`` and :math:`r_{vt} \ge 0` below the reserve ``min_soc + reserve_soc`` (kWh);
:math:`q_t \ge 0` service shortfall (vehicles); :math:`P_d \ge 0` peak site power in the
charge's window (kW). With :math:`E_{v,-1} = E^0_v` and :math:`x_{v,-1}` = plugged in now:

.. math::

    x_{vt} &\le a_{vt}                              &\text{(free to charge: not busy with a task)}\\
    g_{vt} &\le \bar P_v \Delta\, x_{vt}            &\text{(port and vehicle power)}\\
    \eta_v g_{vt} &\le \alpha_{vk} + \beta_{vk} E_{v,t-1} \;\forall k
                                                    &\text{(CC-CV envelope as concave cuts)}\\
    E_{vt} &= E_{v,t-1} + \eta_v g_{vt} - c_{vt}    &\text{(dynamics; forecast use)}\\
    E_{vt} &\le \overline{soc}_v C_v, \quad E_{vt} + u_{vt} \ge \underline{soc}_v C_v,
      \quad E_{vt} + u_{vt} + r_{vt} \ge (\underline{soc}_v + \rho_v) C_v\\
    E_{vt} &\ge R_{vt}                              &\text{(energy required by a time;}\\
      &&\text{where none, } R_{vt} = E^0_v - \textstyle\sum_t c_{vt} - 1 \text{, never binding)}\\
    \textstyle\sum_v x_{vt} &\le N^{port}_t         &\text{(ports of working chargers)}\\
    G_t &\le (L - B_t)\Delta                        &\text{(site connection limit)}\\
    s_{vt} &\ge x_{vt} - x_{v,t-1}\\
    x_{vu} &\ge x_{vt} - x_{v,t-1}, \quad t < u < \min(B, t + \ell)
                                                    &\text{(minimum session, binary periods)}\\
    q_t &\ge n_t - W_t + \textstyle\sum_v x_{vt}    &\text{(needed minus able vehicles)}\\
    P_d &\ge P^0_d, \quad P_d \ge w_{dt}(B_t + G_t/\Delta)

A session that starts in the binary periods (:math:`t < B`, below) lasts at least
:math:`\ell` = ``min_session_periods`` periods there (1: no minimum; the controller asks for
30 min). Without it the heavy scenario's rolling plans rotated vehicles through quarter-hour
sessions, each a drive to the charger and back in the simulation, and the MILP needed
hundreds of nodes to close the gap between the LP relaxation's sessions and the integer
ones.

The forecast use :math:`c_{vt}` does not depend on :math:`x_{vt}`: the forecast work is the
fleet's, spread evenly over its vehicles, and a vehicle that charges hands its share to the
others, so the fleet's use is the same whoever charges. (Letting a plugged-in vehicle use only
standby power made parking on a charger look like saving energy: the plans plugged vehicles
in to stand there.)

Objective (each term divided by its fixed per-scenario normaliser :math:`N_E, N_D, N_U`):

.. math::

    \min\; & \frac{\alpha_E}{N_E}\Big[\sum_t \pi_t G_t
        + \sum_d r_d (P_d - P^0_d) - \sum_v \lambda_v (E_{v,T-1} - E^0_v)\Big]
      + \frac{\alpha_D}{N_D} \sum_t q_t \Delta\\
    & + \frac{\alpha_U}{N_U} \Big[\sum_{vt} \big(s_{vt} + x_{vt}\Delta\big)
        - \sum_v \frac{E_{v,T-1} - E^0_v}{\eta_v \bar P_v}\Big]
      + \omega \sum_t G_t + M \sum_{vt} u_{vt} + M_r \sum_{vt} r_{vt}

The energy term is the energy cost, plus the demand charge only for increments above the peak
already reached this billing period (:math:`P^0_d`, a mutable parameter), minus the value of
the stored energy gained (:math:`\lambda_v = \pi^{after} / \eta_v`, with
:math:`\pi^{after}` the price the stored energy would otherwise be bought at: the controller
passes the mean price of the hours after the horizon). This is a terminal value, so the plan
does not stop charging near every horizon end, and a kWh kept into an evening peak is worth
the peak price. The downtime term is the service shortfall in vehicle-hours (the metric
``service_shortfall_vehicle_h``); the utilisation term counts plug-in sessions and occupied
port-hours, so chargers are used in few, full sessions, and credits the port-hours that the
stored energy saves later (without that credit a plan never charges ahead of need: the port
time would be paid now and never earned back). Occupied port-hours are the idle occupied
port-hours plus the energy charged over the port power; the energy is set by the demand, so
penalising occupation penalises idle occupation. (Penalising the idle form
:math:`x\Delta - g/\bar P` directly rewards grid energy in the objective and loosens the LP
relaxation: HiGHS took 30 to 300 times longer on the same instances.) :math:`\omega` is a
small battery-wear cost per kWh of throughput; :math:`M \gg M_r` price the two floors.

Relaxed tail (relax-and-fix): with ``binary_periods`` = :math:`B`, only
:math:`x_{vt}, t < B` are binary; the later periods have :math:`0 \le x_{vt} \le 1`. Only the
first re-plan interval of a plan is carried out before the next re-plan, so the tail's job is
to value the state that the first periods leave behind (its LP relaxation is a slightly
optimistic estimate of the tail's cost). A binary per vehicle and period over a 4 h horizon
made a light-scenario re-plan 3 to 6 times slower (``benchmarks/bench_planner.py``). In the
returned plan a relaxed period is rounded: the vehicles with the largest :math:`x_{vt} \ge 0.5`
are plugged in, at most :math:`N^{port}_t` of them.

Fleet-level relax-and-fix (``solve_relax_and_fix(data, fleet=True)``): every
:math:`x_{vt}` is relaxed to [0, 1] and the fleet's plugged-in count
:math:`K_t = \sum_v x_{vt}` is the integer variable instead, made integral block by block.
The plan then gives each period's count and grid energy to vehicles, the neediest first,
within each vehicle's bounds (:func:`assign_counts`; fewer than :math:`K_t` if fewer can
take energy). This is a plan for fleet-level dispatch (the ``hindsight`` charges the plan's
number of vehicles, the neediest first, whatever the plan's vehicle ids): with a handful of
integers per period rather than one binary per vehicle, a whole day solves in one MILP.

Periods may differ in length (``PlanInput.period_lengths_min``, e.g. an hour-long tail
after quarter-hours: move blocking): :math:`\Delta` is then :math:`\Delta_t` throughout and
each period has the CC-CV cuts of its length. The returned plan is in periods of
``period_min`` (:func:`expand_periods`), so its users never see the blocks.

Ports are aggregated (one binary per vehicle and period); :func:`assign_ports` then gives
every session a port, keeping a vehicle on its port while it stays plugged in. This is always
possible: in each period at most :math:`N^{port}_t` vehicles are plugged in.

:class:`ChargingPlanner` builds the model once for a fleet size and horizon and updates its
mutable parameters on each re-plan; :func:`plan_charging` is the one-call version for a
plant engineer's own data. Both take a :class:`PlanInput`.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pyomo.environ as pyo

from agentev.battery import concave_cuts, period_charge_curve
from agentev.config import VehicleType
from agentev.optimization.solvers import HIGHS_MIP_OPTIONS, SolverOptions, check_available

log = logging.getLogger(__name__)

#: Version of the formulation; bump it when the model changes (it keys cached hindsight plans).
FORMULATION_VERSION = 7
#: Penalty per kWh below ``min_soc`` (relative to normalised objective terms of order 1).
SOC_SLACK_PENALTY = 1000.0
#: Penalty per kWh below ``min_soc + reserve_soc`` (the plan's soft reserve).
RESERVE_PENALTY = 0.3
#: Battery-wear cost per kWh of throughput, relative to the normalised terms.
WEAR_PER_KWH = 1e-4
MAX_CUTS = 12
#: A relaxed count within this of an integer is that integer when a fleet plan rounds up.
ROUND_UP_TOL = 1e-6
#: A fleet plan's counts are rounded up and fixed this many minutes at a time, the LP
#: re-solved after each block (``continuous`` seed 0, 72 h: blocks of 3, 6 and 12 h took
#: 32, 23 and 25 s, objectives within 0.03 % of each other).
ROUND_BLOCK_MIN = 360.0


@dataclass
class PlanVehicle:
    """One vehicle in a planning problem (plain data).

    Attributes:
        vehicle_id: Any id.
        soc: State of charge now (fraction).
        capacity_kwh: Battery capacity (kWh).
        max_power_kw: Grid-side charging power limit (kW), vehicle and port.
        efficiency: Charging efficiency (battery kWh per grid kWh).
        min_soc: Lowest allowed state of charge (soft: violations are penalised).
        reserve_soc: A reserve above ``min_soc`` that the plan keeps when it can (fraction;
            a kWh below it costs ``RESERVE_PENALTY``, far less than one below ``min_soc``).
        max_soc: Highest allowed state of charge.
        knee_soc: CC-CV knee.
        floor_fraction: CC-CV power at full, as a fraction of ``max_power_kw``.
        idle_kw: Consumption while plugged in (kW).
        free_windows: ``(start_min, end_min)`` windows, relative to the plan start, in which
            the vehicle may charge; a period counts if a window covers all of it. None: free
            throughout.
        work_kwh: Consumption in each period if the vehicle works instead of charging
            (kWh); None: ``idle_kw`` throughout.
        required: ``(time_min, energy_kwh)`` pairs: the battery must hold at least that
            energy at the end of the period in which ``time_min`` falls.
        plugged: True if plugged in now (no new session in period 0).
        port: The ``(charger_id, port)`` it is plugged into now, kept if still planned.
    """

    vehicle_id: int | str
    soc: float
    capacity_kwh: float
    max_power_kw: float = 3.3
    efficiency: float = 0.92
    min_soc: float = 0.2
    reserve_soc: float = 0.0
    max_soc: float = 1.0
    knee_soc: float = 0.8
    floor_fraction: float = 0.1
    idle_kw: float = 0.0
    free_windows: Sequence[tuple[float, float]] | None = None
    work_kwh: Sequence[float] | None = None
    required: Sequence[tuple[float, float]] = ()
    plugged: bool = False
    port: tuple[str, int] | None = None


@dataclass
class PlanCharger:
    """A charger: ports, power per port (kW), and its availability per period (None: always).

    The port power enters the model through each vehicle's ``max_power_kw`` (the smaller of
    the vehicle's and the ports' limits); ports are assumed interchangeable.
    """

    charger_id: str
    ports: int = 1
    power_kw: float = 3.3
    available: Sequence[bool] | None = None


@dataclass
class PlanDemandCharge:
    """A demand charge: cost per kW of peak increase, its window, the peak already reached.

    Attributes:
        rate_per_kw: Cost per kW above ``peak_so_far_kw`` (currency/kW, already pro-rated).
        in_window: Per period, whether the charge looks at it; None: every period.
        peak_so_far_kw: Highest 15-minute mean site power reached so far this period (kW).
    """

    rate_per_kw: float
    in_window: Sequence[bool] | None = None
    peak_so_far_kw: float = 0.0


@dataclass
class PlanInput:
    """A planning problem (plain data; times relative to the plan start).

    Attributes:
        period_min: Period length (minutes).
        price_per_kwh: Energy price of each period (currency/kWh); its length is the
            horizon.
        base_load_kw: Site base load in each period (kW).
        vehicles: The vehicles.
        chargers: The chargers.
        grid_limit_kw: Site connection limit for base load plus charging (kW); None = none.
        needed_vehicles: Vehicles the forecast task demand needs in each period.
        workers: Vehicles able to work in each period if no planned vehicle charges; None =
            the number of planned vehicles.
        demand_charges: Demand charges.
        alpha_energy: Weight of the energy term.
        alpha_downtime: Weight of the downtime term.
        alpha_utilization: Weight of the utilisation term.
        energy_norm: Normaliser of the energy term over the horizon (currency).
        downtime_norm: Normaliser of the downtime term over the horizon (vehicle-h).
        utilization_norm: Normaliser of the utilisation term over the horizon.
        stored_energy_price: Value of a battery kWh gained (currency/kWh at the grid);
            None = the mean of ``price_per_kwh``.
        period_lengths_min: Length of each period (minutes), when they differ (e.g. a
            horizon's far periods made longer, see :func:`coarse_tail_lengths`); None: every
            period is ``period_min`` long. Per-period quantities (``work_kwh``,
            ``needed_vehicles``, prices) are then per period of that length.
    """

    period_min: float
    price_per_kwh: Sequence[float]
    base_load_kw: Sequence[float]
    vehicles: Sequence[PlanVehicle]
    chargers: Sequence[PlanCharger]
    grid_limit_kw: float | None = None
    needed_vehicles: Sequence[float] | None = None
    workers: Sequence[float] | None = None
    demand_charges: Sequence[PlanDemandCharge] = ()
    alpha_energy: float = 0.4
    alpha_downtime: float = 0.4
    alpha_utilization: float = 0.2
    energy_norm: float = 1.0
    downtime_norm: float = 1.0
    utilization_norm: float = 1.0
    stored_energy_price: float | None = None
    period_lengths_min: Sequence[float] | None = None

    @property
    def periods(self) -> int:
        """Number of periods in the horizon."""
        return len(self.price_per_kwh)

    def lengths_min(self) -> np.ndarray:
        """Length of each period (minutes).

        Raises:
            ValueError: if ``period_lengths_min`` does not give one positive length per
                period.
        """
        if self.period_lengths_min is None:
            return np.full(self.periods, float(self.period_min))
        lengths = np.asarray(self.period_lengths_min, dtype=float)
        if lengths.shape != (self.periods,) or not np.all(lengths > 0):
            raise ValueError(
                f"period_lengths_min = {list(self.period_lengths_min)}: must give one positive "
                f"length (minutes) for each of the {self.periods} periods"
            )
        return lengths


@dataclass
class Plan:
    """A solved (or fallback) charging plan.

    Attributes:
        status: ``optimal``, ``feasible`` (stopped at the gap or a limit with a solution),
            ``previous`` (the previous plan, shifted), or ``fcfs`` (no plan: use the
            first-come-first-served rule).
        plugged: ``[vehicle, period]`` booleans: plugged in. Every array is given in periods
            of ``period_min``, also for a problem with longer periods
            (:func:`expand_periods`).
        grid_kwh: ``[vehicle, period]`` grid energy (kWh).
        energy_kwh: ``[vehicle, period]`` battery energy at the end of the period (kWh).
        ports: Per vehicle, per period, the ``(charger_id, port)`` or None.
        terms: Objective terms of the solved model: energy_cost, demand_increment,
            stored_value, stored_port_h, shortfall_vh, sessions, occupied_port_h,
            soc_slack_kwh, reserve_slack_kwh, objective (with a relaxed tail, the tail's
            terms are those of its relaxation, not of the rounded arrays).
        fallback: True if the solver did not deliver a solution within its limits.
        solve_s: Wall-clock time of update plus solve (s).
        message: Why a fallback happened.
    """

    status: str
    plugged: np.ndarray
    grid_kwh: np.ndarray
    energy_kwh: np.ndarray
    ports: list[list[tuple[str, int] | None]] = field(default_factory=list)
    terms: dict[str, float] = field(default_factory=dict)
    fallback: bool = False
    solve_s: float = 0.0
    message: str = ""


def _windows_to_periods(windows, lengths_min: Sequence[float]) -> list[int]:
    """1 for each period (of the given lengths, minutes) that a window covers entirely."""
    if windows is None:
        return [1] * len(lengths_min)
    ends = np.cumsum(lengths_min)
    out = []
    for a, b in zip(ends - np.asarray(lengths_min), ends, strict=True):
        out.append(int(any(lo <= a + 1e-9 and b <= hi + 1e-9 for lo, hi in windows)))
    return out


def coarse_tail_lengths(periods: int, period_min: float, fine: int, tail_min: float) -> list[float]:
    """Period lengths for a horizon of ``periods`` x ``period_min`` with a coarse tail.

    The first ``fine`` periods keep ``period_min``; the rest of the horizon is cut into
    periods of ``tail_min`` (the last one shorter if the horizon does not divide). This is
    move blocking: only the near periods' decisions are carried out, the far ones value the
    state they leave, and a quarter of the periods makes the model about half the size.

    Args:
        periods: Periods of ``period_min`` in the horizon.
        period_min: The fine period length (minutes).
        fine: Fine periods at the start.
        tail_min: Length of the tail's periods (minutes), a multiple of ``period_min``.

    Raises:
        ValueError: if ``tail_min`` is not a positive multiple of ``period_min``.
    """
    ratio = tail_min / period_min
    if tail_min <= 0 or abs(ratio - round(ratio)) > 1e-9:
        raise ValueError(
            f"tail_period_min = {tail_min}: must be a positive multiple of period_min = "
            f"{period_min}"
        )
    step = int(round(ratio))
    fine = min(fine, periods)
    lengths = [float(period_min)] * fine
    left = periods - fine
    while left > 0:
        k = min(step, left)
        lengths.append(k * float(period_min))
        left -= k
    return lengths


def vehicle_cuts(v: PlanVehicle, period_min: float) -> list[tuple[float, float]]:
    """CC-CV cuts ``charged <= a + b * E_start`` for one vehicle and period length."""
    vtype = VehicleType(
        capacity_kwh=v.capacity_kwh,
        max_charge_power_kw=v.max_power_kw,
        charging_efficiency=v.efficiency,
        min_soc=min(v.min_soc, v.max_soc * 0.999),
        max_soc=v.max_soc,
        cccv_knee_soc=v.knee_soc,
        cccv_floor_fraction=v.floor_fraction,
    )
    # MAX_CUTS + 1 samples have at most MAX_CUTS hull segments: no cut is dropped (dropping
    # the last ones, the steepest, let the model charge more than the curve near full)
    xs, ys = period_charge_curve(vtype, period_min, points=MAX_CUTS + 1)
    return concave_cuts(xs, ys)[:MAX_CUTS]


class ChargingPlanner:
    """A charging MILP built once for ``num_vehicles`` x ``periods``, re-solved with new data.

    Args:
        num_vehicles: Vehicles in every problem this planner solves.
        periods: Periods in the horizon.
        num_demand_charges: Demand charges in every problem.
        options: Solver options.
        binary_periods: Periods whose plug-in decisions are binary; the later ones are
            relaxed to [0, 1] (see the module docs). None: every period is binary.
        min_session_periods: A session that starts in the binary periods lasts at least
            this many periods, as far as they reach (1: no minimum; see the module docs).
            The hierarchical planner ignores it.

    Raises:
        SolverUnavailableError: if the solver is not installed.
        ValueError: if ``binary_periods`` or ``min_session_periods`` is below 1.
    """

    def __init__(
        self,
        num_vehicles: int,
        periods: int,
        num_demand_charges: int = 0,
        options: SolverOptions | None = None,
        binary_periods: int | None = None,
        min_session_periods: int = 1,
    ) -> None:
        self.options = options or SolverOptions()
        check_available(self.options.solver)
        self.num_vehicles = num_vehicles
        self.periods = periods
        self.binary_periods = periods if binary_periods is None else min(binary_periods, periods)
        if self.binary_periods < 1:
            raise ValueError(f"binary_periods = {binary_periods}: must be at least 1")
        if min_session_periods < 1:
            raise ValueError(f"min_session_periods = {min_session_periods}: must be at least 1")
        self.min_session_periods = int(min_session_periods)
        self.num_demand_charges = num_demand_charges
        self.model: pyo.ConcreteModel | None = None  # built by the first update
        self._model_key: tuple | None = None
        self._solver = None
        self._cuts_cache: dict[tuple, list[tuple[float, float]]] = {}
        self.previous: Plan | None = None

    # ----------------------------------------------------------------- model
    def _static_key(self, data: PlanInput) -> tuple:
        """What :meth:`_build` bakes into the model: the period length and the vehicle types.

        A problem with another key rebuilds the model (a run's fleet keeps its key).
        """
        return (tuple(data.lengths_min()),) + tuple(
            (
                v.capacity_kwh,
                v.max_power_kw,
                v.efficiency,
                v.min_soc,
                v.reserve_soc,
                v.max_soc,
                v.knee_soc,
                v.floor_fraction,
                v.idle_kw,
            )
            for v in data.vehicles
        )

    def _ensure_model(self, data: PlanInput) -> None:
        """Build the model on the first problem, and again only if its static data change."""
        key = self._static_key(data)
        if self.model is None or key != self._model_key:
            self.model = self._build(data)
            self._model_key = key
            self._solver = None

    def _build(self, data: PlanInput) -> pyo.ConcreteModel:
        """The MILP, with the static data (period length, vehicle types) as constants.

        Only what changes between re-plans is a mutable parameter, so a re-plan sends few
        coefficients to the solver: Pyomo re-evaluates every mutable coefficient on each solve.
        """
        m = pyo.ConcreteModel(name="charging_plan")
        m.V = pyo.RangeSet(0, self.num_vehicles - 1)
        m.T = pyo.RangeSet(0, self.periods - 1)
        m.D = pyo.Set(initialize=list(range(self.num_demand_charges)))
        lengths = [float(length) for length in data.lengths_min()]
        dt_h = [length / 60.0 for length in lengths]  # floats: numpy scalars upset Pyomo
        vs = data.vehicles
        eff = [v.efficiency for v in vs]
        # Flat cuts (the constant-power part) repeat the power constraint: only the taper
        # cuts go in; a period's cuts depend on its length.
        cuts = [
            [[c for c in self._cuts(v, length) if c[1] < -1e-9] for length in lengths] for v in vs
        ]
        mp = {"mutable": True}
        m.e0 = pyo.Param(m.V, initialize=0.0, **mp)
        m.plugged0 = pyo.Param(m.V, initialize=0.0, **mp)
        m.lam = pyo.Param(m.V, initialize=0.0, **mp)
        m.avail = pyo.Param(m.V, m.T, initialize=1.0, **mp)
        m.work = pyo.Param(m.V, m.T, initialize=0.0, **mp)
        m.req = pyo.Param(m.V, m.T, initialize=0.0, **mp)
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

        m.x = pyo.Var(
            m.V,
            m.T,
            domain=lambda m, v, t: pyo.Binary if t < self.binary_periods else pyo.UnitInterval,
        )
        m.g = pyo.Var(m.V, m.T, domain=pyo.NonNegativeReals)
        m.G = pyo.Var(m.T, domain=pyo.NonNegativeReals)  # the fleet's grid energy (kWh)
        # E is free below: a forecast that drains a battery is priced by the min_soc slack
        # instead of making the whole fleet's plan infeasible.
        m.E = pyo.Var(m.V, m.T, domain=pyo.Reals)
        m.s = pyo.Var(m.V, m.T, domain=pyo.NonNegativeReals)
        m.u = pyo.Var(m.V, m.T, domain=pyo.NonNegativeReals)
        m.r = pyo.Var(m.V, m.T, domain=pyo.NonNegativeReals)
        m.q = pyo.Var(m.T, domain=pyo.NonNegativeReals)
        m.P = pyo.Var(m.D, domain=pyo.NonNegativeReals)

        def prev_e(m, v, t):
            return m.e0[v] if t == 0 else m.E[v, t - 1]

        def prev_x(m, v, t):
            return m.plugged0[v] if t == 0 else m.x[v, t - 1]

        m.free = pyo.Constraint(m.V, m.T, rule=lambda m, v, t: m.x[v, t] <= m.avail[v, t])
        m.power = pyo.Constraint(
            m.V,
            m.T,
            rule=lambda m, v, t: m.g[v, t] <= vs[v].max_power_kw * dt_h[t] * m.x[v, t],
        )
        m.VTK = pyo.Set(
            initialize=[(v, t, k) for v in m.V for t in m.T for k in range(len(cuts[v][t]))]
        )
        m.cccv = pyo.Constraint(
            m.VTK,
            rule=lambda m, v, t, k: (
                eff[v] * m.g[v, t] <= cuts[v][t][k][0] + cuts[v][t][k][1] * prev_e(m, v, t)
            ),
        )
        m.dynamics = pyo.Constraint(
            m.V,
            m.T,
            rule=lambda m, v, t: m.E[v, t] == prev_e(m, v, t) + eff[v] * m.g[v, t] - m.work[v, t],
        )
        m.soc_max = pyo.Constraint(
            m.V, m.T, rule=lambda m, v, t: m.E[v, t] <= vs[v].max_soc * vs[v].capacity_kwh
        )
        m.soc_min = pyo.Constraint(
            m.V,
            m.T,
            rule=lambda m, v, t: m.E[v, t] + m.u[v, t] >= vs[v].min_soc * vs[v].capacity_kwh,
        )
        m.soc_reserve = pyo.Constraint(
            m.V,
            m.T,
            rule=lambda m, v, t: (
                m.E[v, t] + m.u[v, t] + m.r[v, t]
                >= min(vs[v].min_soc + vs[v].reserve_soc, vs[v].max_soc) * vs[v].capacity_kwh
            ),
        )
        m.required = pyo.Constraint(m.V, m.T, rule=lambda m, v, t: m.E[v, t] >= m.req[v, t])
        m.port_count = pyo.Constraint(
            m.T, rule=lambda m, t: sum(m.x[v, t] for v in m.V) <= m.ports[t]
        )
        m.fleet_grid = pyo.Constraint(m.T, rule=lambda m, t: m.G[t] == sum(m.g[v, t] for v in m.V))
        m.site_limit = pyo.Constraint(m.T, rule=lambda m, t: m.G[t] <= m.site_kwh[t])
        m.session = pyo.Constraint(
            m.V, m.T, rule=lambda m, v, t: m.s[v, t] >= m.x[v, t] - prev_x(m, v, t)
        )
        # minimum session length: a session started in period t (x_t - x_{t-1} = 1) stays
        # plugged in for the next min_session_periods - 1 binary periods
        m.MS = pyo.Set(
            dimen=3,
            initialize=[
                (v, t, u)
                for v in range(self.num_vehicles)
                for t in range(self.binary_periods)
                for u in range(t + 1, min(self.binary_periods, t + self.min_session_periods))
            ],
        )
        m.min_session = pyo.Constraint(
            m.MS,
            rule=lambda m, v, t, u: m.x[v, u] >= m.x[v, t] - prev_x(m, v, t),
        )
        m.shortfall = pyo.Constraint(
            m.T,
            rule=lambda m, t: m.q[t] >= m.needed[t] - m.workers[t] + sum(m.x[v, t] for v in m.V),
        )
        m.peak_floor = pyo.Constraint(m.D, rule=lambda m, d: m.P[d] >= m.peak0[d])
        m.peak = pyo.Constraint(
            m.D,
            m.T,
            rule=lambda m, d, t: m.P[d] >= m.inwin[d, t] * (m.base[t] + m.G[t] / dt_h[t]),
        )

        last = self.periods - 1
        m.energy_cost = pyo.Expression(expr=sum(m.price[t] * m.G[t] for t in m.T))
        m.demand_increment = pyo.Expression(
            expr=sum(m.rate[d] * (m.P[d] - m.peak0[d]) for d in m.D)
        )
        m.stored_value = pyo.Expression(expr=sum(m.lam[v] * (m.E[v, last] - m.e0[v]) for v in m.V))
        m.stored_port_h = pyo.Expression(
            expr=sum((m.E[v, last] - m.e0[v]) / (eff[v] * vs[v].max_power_kw) for v in m.V)
        )
        m.shortfall_vh = pyo.Expression(expr=sum(m.q[t] * dt_h[t] for t in m.T))
        m.sessions = pyo.Expression(expr=sum(m.s[v, t] for v in m.V for t in m.T))
        m.occupied_port_h = pyo.Expression(expr=sum(m.x[v, t] * dt_h[t] for v in m.V for t in m.T))
        m.throughput = pyo.Expression(expr=sum(m.G[t] for t in m.T))
        m.soc_slack = pyo.Expression(expr=sum(m.u[v, t] for v in m.V for t in m.T))
        m.reserve_slack = pyo.Expression(expr=sum(m.r[v, t] for v in m.V for t in m.T))
        m.objective = pyo.Objective(
            expr=m.w_e * (m.energy_cost + m.demand_increment - m.stored_value)
            + m.w_d * m.shortfall_vh
            + m.w_u * (m.sessions + m.occupied_port_h - m.stored_port_h)
            + WEAR_PER_KWH * m.throughput
            + SOC_SLACK_PENALTY * m.soc_slack
            + RESERVE_PENALTY * m.reserve_slack,
            sense=pyo.minimize,
        )
        return m

    # ----------------------------------------------------------------- data
    def _cuts(self, v: PlanVehicle, period_min: float) -> list[tuple[float, float]]:
        key = (
            v.capacity_kwh,
            v.max_power_kw,
            v.efficiency,
            v.max_soc,
            v.knee_soc,
            v.floor_fraction,
            period_min,
        )
        cuts = self._cuts_cache.get(key)
        if cuts is None:
            cuts = vehicle_cuts(v, period_min)
            self._cuts_cache[key] = cuts
        return cuts

    def _check_shape(self, data: PlanInput) -> None:
        """Raise ValueError if ``data`` does not fit the model this planner built."""
        if len(data.vehicles) != self.num_vehicles or data.periods != self.periods:
            raise ValueError(
                f"plan input has {len(data.vehicles)} vehicles x {data.periods} periods; "
                f"this planner was built for {self.num_vehicles} x {self.periods}"
            )
        if len(data.demand_charges) != self.num_demand_charges:
            raise ValueError(
                f"plan input has {len(data.demand_charges)} demand charges; "
                f"this planner was built for {self.num_demand_charges}"
            )

    def _load_site(self, data: PlanInput) -> float:
        """Load the period length, weights, site, tariff and demand parameters.

        Shared by every planner model (they name these parameters alike). Returns the value
        of a stored battery kWh at the grid price (currency/kWh).
        """
        m = self.model
        nt = self.periods
        dt_h = [float(length) / 60.0 for length in data.lengths_min()]
        if m.component("dt_h") is not None:  # the aggregate model's (uniform) period
            m.dt_h.set_value(dt_h[0])
        m.w_e.set_value(data.alpha_energy / data.energy_norm)
        m.w_d.set_value(data.alpha_downtime / data.downtime_norm)
        m.w_u.set_value(data.alpha_utilization / data.utilization_norm)
        ports = np.zeros(nt)
        for c in data.chargers:
            avail = c.available if c.available is not None else [True] * nt
            ports += np.array([c.ports if a else 0 for a in avail[:nt]], dtype=float)
        workers = [float(self.num_vehicles)] * nt if data.workers is None else list(data.workers)
        needed = [0.0] * nt if data.needed_vehicles is None else list(data.needed_vehicles)
        for t in range(nt):
            m.price[t].set_value(float(data.price_per_kwh[t]))
            m.base[t].set_value(float(data.base_load_kw[t]))
            headroom = (
                1e6
                if data.grid_limit_kw is None
                else max(0.0, data.grid_limit_kw - data.base_load_kw[t]) * dt_h[t]
            )
            m.site_kwh[t].set_value(headroom)
            m.ports[t].set_value(float(ports[t]))
            m.needed[t].set_value(float(needed[t]))
            m.workers[t].set_value(float(workers[t]))
        for d, charge in enumerate(data.demand_charges):
            m.rate[d].set_value(charge.rate_per_kw)
            m.peak0[d].set_value(charge.peak_so_far_kw)
            win = charge.in_window if charge.in_window is not None else [True] * nt
            for t in range(nt):
                m.inwin[d, t].set_value(1.0 if win[t] else 0.0)
        mean_price = float(np.mean(data.price_per_kwh)) if nt else 0.0
        return mean_price if data.stored_energy_price is None else data.stored_energy_price

    def update(self, data: PlanInput) -> None:
        """Load a problem into the model's mutable parameters.

        Raises:
            ValueError: if the problem's shape does not match the planner's, or its period
                lengths are not multiples of ``period_min``.
        """
        self._check_shape(data)
        period_repeats(data)  # before any solve: the plan is handed back in period_min
        self._ensure_model(data)
        m = self.model
        nt = self.periods
        lengths = data.lengths_min()
        ends = np.cumsum(lengths)
        stored_price = self._load_site(data)
        for i, v in enumerate(data.vehicles):
            m.e0[i].set_value(v.soc * v.capacity_kwh)
            m.plugged0[i].set_value(1.0 if v.plugged else 0.0)
            m.lam[i].set_value(stored_price / v.efficiency)
            free = _windows_to_periods(v.free_windows, lengths)
            work = list(v.idle_kw * lengths / 60.0) if v.work_kwh is None else list(v.work_kwh)
            # no requirement: a bound that never binds (E cannot fall below e0 - all work), so
            # E stays free below and a drained forecast is priced by the slacks, not infeasible
            req = [v.soc * v.capacity_kwh - sum(work) - 1.0] * nt
            for when, energy in v.required:
                t = min(nt - 1, int(np.searchsorted(ends, when - 1e-9)))
                req[t] = max(req[t], energy)
            for t in range(nt):
                m.avail[i, t].set_value(float(free[t]))
                m.work[i, t].set_value(float(work[t]))
                m.req[i, t].set_value(float(req[t]))

    # ----------------------------------------------------------------- solve
    def solve(self, data: PlanInput, elapsed_periods: int = 1) -> Plan:
        """Update the model with ``data`` and solve; fall back cleanly if that fails.

        Fallback order: the solver's incumbent (status ``feasible``), else the previous plan
        shifted by ``elapsed_periods`` (``previous``), else no plan (``fcfs``). A fallback is
        logged as a warning and flagged; it never raises.
        """
        start = time.perf_counter()
        self.update(data)
        status, message = self._run_solver()
        elapsed = time.perf_counter() - start
        if status in ("optimal", "feasible"):
            plan = self._extract(data, status)
            plan.fallback = bool(message)
            plan.message = message
        else:
            log.warning("charging plan: %s; falling back", message)
            plan = self._fallback(data, message, elapsed_periods)
        plan.solve_s = elapsed
        if plan.status in ("optimal", "feasible"):
            self.previous = plan
        return plan

    def solve_relax_and_fix(self, data: PlanInput, fleet: bool = False) -> Plan:
        r"""Solve the whole horizon block by block, every period integral in the end.

        Relax-and-fix: the first ``binary_periods`` are integral and the rest relaxed; after
        each solve that block is fixed at its values and the next block becomes integral,
        until the last. Every solve sees the whole horizon (the fixed past and the relaxed
        future), so a block is planned for what follows it. Used for a whole-run plan (the
        ``hindsight``), too large to solve as one MILP. If a block's solve fails, the plan of
        the previous block (its relaxed tail rounded) is returned, flagged; if the first
        fails, the usual fallback.

        Args:
            data: The problem.
            fleet: Make the fleet's plugged-in count :math:`K_t = \sum_v x_{vt}` the
                integer variable instead of each :math:`x_{vt}`, which stay in [0, 1]
                throughout (a plan for fleet-level dispatch, see the module docs). With
                ``options.rounding_gap`` set, rounding the LP relaxation's counts is tried
                first (:meth:`_round_fleet_counts`).

        Raises:
            ValueError: if ``fleet`` and the periods differ in length.
        """
        if fleet and not np.allclose(data.lengths_min(), data.period_min):
            raise ValueError(
                f"period_lengths_min = {list(data.period_lengths_min)}: a fleet-level plan "
                f"needs periods of one length (period_min = {data.period_min})"
            )
        start = time.perf_counter()
        self.update(data)
        m, nt, block = self.model, self.periods, self.binary_periods
        if fleet:
            self._add_fleet_count()
        integral = pyo.NonNegativeIntegers if fleet else pyo.Binary

        def block_vars(a: int, b: int) -> list:
            ts = range(a, min(nt, b))
            return [m.n[t] for t in ts] if fleet else [m.x[v, t] for v in m.V for t in ts]

        plan: Plan | None = None
        message = ""
        try:
            if fleet and self.options.rounding_gap is not None:
                plan = self._round_fleet_counts(data)
                if plan is not None:
                    plan.solve_s = time.perf_counter() - start
                    return plan
            if fleet:  # the counts' MILPs, block by block
                # (the per-vehicle model starts with its first block binary already)
                first = block_vars(0, block)
                for var in first:
                    var.domain = integral
                if self._solver is not None:
                    self._solver.update_variables(first)
            for k in range(0, nt, block):
                if k > 0:
                    changed = block_vars(k - block, k)
                    for var in changed:
                        var.fix(float(round(pyo.value(var))))
                    for var in block_vars(k, k + block):
                        var.domain = integral
                        changed.append(var)
                    if self._solver is not None:
                        self._solver.update_variables(changed)
                status, msg = self._run_solver()
                if status not in ("optimal", "feasible"):
                    message = f"relax-and-fix block at period {k}: {msg}"
                    break
                message = message or msg
                self.binary_periods = min(nt, k + block)  # read by _extract
                plan = self._extract(data, status, fleet=fleet)
                self.binary_periods = block
        finally:
            self.binary_periods = block
            self._restore_domains()
        if plan is None:
            log.warning("charging plan: %s; falling back", message)
            plan = self._fallback(data, message, 1)
        else:
            plan.fallback = bool(message)
            plan.message = message
            if message:
                log.warning("charging plan: %s", message)
        plan.solve_s = time.perf_counter() - start
        return plan

    def _round_fleet_counts(self, data: PlanInput) -> Plan | None:
        r"""The fleet plan by LP rounding, kept if its gap to the LP relaxation is small.

        The LP relaxation (counts :math:`K_t` relaxed too) is a lower bound :math:`J_{LP}` on
        the fleet MILP. Block by block (``ROUND_BLOCK_MIN``), each period's count is rounded
        up, :math:`K_t = \lceil K^{LP}_t \rceil`, and fixed, and the LP is solved again so
        that the later periods adapt. Rounding up is always feasible: :math:`K_t` vehicles are
        free in period :math:`t` and it has :math:`K_t` ports, since both are integers at
        least :math:`K^{LP}_t`, and raising a count lets every grid energy stay. The result
        is kept if :math:`(J - J_{LP}) / |J|` is within ``options.rounding_gap``; otherwise
        the counts are unfixed and ``None`` is returned.

        Rounding up costs idle port time that a MILP shifts energy to avoid. On the 24 h
        scenarios one MILP plans better and is barely slower (light, 10 seeds: the rounded
        plans worse in 9, by up to 1.2 % in objective; executed ``weighted_objective``
        1.806 against the MILP's 1.763; 2.4 s against 2.9 s). On the 72 h ``continuous``
        run, whose relax-and-fix blocks each spent about 27 s in root cut rounds that moved
        the bound by 0.1 %, rounding takes about 25 s rather than 90 s and comes within 0.9
        to 1.2 % of the LP bound.
        """
        m, nt = self.model, self.periods
        block = max(1, round(ROUND_BLOCK_MIN / data.period_min))
        status, _ = self._run_solver()
        if status != "optimal":
            return None
        bound = pyo.value(m.objective)
        for k in range(0, nt, block):
            changed = []
            for t in range(k, min(nt, k + block)):
                m.n[t].fix(float(math.ceil(pyo.value(m.n[t]) - ROUND_UP_TOL)))
                changed.append(m.n[t])
            if self._solver is not None:
                self._solver.update_variables(changed)
            status, _ = self._run_solver()
            if status != "optimal":
                break
        objective = pyo.value(m.objective) if status == "optimal" else math.inf
        gap = (objective - bound) / max(abs(objective), 1e-9)
        if gap > self.options.rounding_gap:
            log.info("fleet plan: rounded counts %.2f %% above the LP bound; MILPs", 100 * gap)
            changed = list(m.n.values())
            for var in changed:
                var.unfix()
            if self._solver is not None:
                self._solver.update_variables(changed)
            return None
        plan = self._extract(data, "optimal", fleet=True)
        plan.terms["lp_bound"] = bound
        return plan

    def _add_fleet_count(self) -> None:
        r"""Relax every plug-in decision and add the fleet's count :math:`K_t = \sum_v x_{vt}`.

        The later periods' counts start relaxed; :meth:`_restore_domains` removes them.
        """
        m = self.model
        for var in m.x.values():
            var.domain = pyo.UnitInterval
        m.n = pyo.Var(m.T, domain=pyo.NonNegativeReals)
        m.fleet_count = pyo.Constraint(m.T, rule=lambda m, t: m.n[t] == sum(m.x[v, t] for v in m.V))
        self._solver = None  # a new variable and constraint: hand the model over again

    def _restore_domains(self) -> None:
        """Undo relax-and-fix: the first ``binary_periods`` binary, the rest relaxed."""
        m = self.model
        if m.component("n") is not None:  # the fleet count of a fleet-level solve
            m.del_component(m.fleet_count)
            m.del_component(m.n)
            self._solver = None
        changed = []
        for v in range(self.num_vehicles):
            for t in range(self.periods):
                var = m.x[v, t]
                var.unfix()
                var.domain = pyo.Binary if t < self.binary_periods else pyo.UnitInterval
                changed.append(var)
        if self._solver is not None:
            self._solver.update_variables(changed)

    def _run_solver(self) -> tuple[str, str]:
        """Return ``(status, fallback message)``; status optimal, feasible or failed."""
        opts = self.options
        if opts.solver == "highs":
            return self._solve_highs()
        from pyomo.opt import SolverFactory, TerminationCondition

        solver = SolverFactory(opts.solver)
        if opts.solver == "glpk":
            solver.options["tmlim"] = max(1, int(math.ceil(opts.time_limit_s)))
            solver.options["mipgap"] = opts.mip_gap
        with tempfile.TemporaryDirectory() as tmp:
            logfile = os.path.join(tmp, "solver.log")
            try:
                result = solver.solve(self.model, load_solutions=False, logfile=logfile)
            except Exception as exc:  # noqa: BLE001  (a solver crash must not stop the run)
                return "failed", f"solver {opts.solver} failed: {exc}"
            solver_log = ""
            if os.path.exists(logfile):
                with open(logfile) as fh:
                    solver_log = fh.read()
        tc = result.solver.termination_condition
        if len(result.solution) == 0:
            return "failed", f"solver {opts.solver}: {tc} without a solution"
        self.model.solutions.load_from(result)
        if tc == TerminationCondition.optimal:
            return "optimal", ""
        if tc == TerminationCondition.feasible:
            # glpsol reports a solve stopped at the MIP gap, and one stopped at its time
            # limit (Pyomo overwrites maxTimeLimit), as feasible: only its log tells them apart
            if "TIME LIMIT EXCEEDED" in solver_log:
                return "feasible", f"solver {opts.solver} stopped: time limit; using the incumbent"
            return "feasible", ""
        return "feasible", f"solver {opts.solver} stopped: {tc}"

    def _solve_highs(self) -> tuple[str, str]:
        from pyomo.contrib.solver.common.results import TerminationCondition
        from pyomo.contrib.solver.solvers.highs import Highs

        opts = self.options
        if self._solver is None:
            self._solver = Highs()
            self._solver.set_instance(self.model)
            # HiGHS prints a warning on stdout for every mutable coefficient updated to zero
            # (e.g. a demand charge outside its window); silence its console output.
            self._solver._solver_model.setOptionValue("output_flag", False)
            # the model's structure and variable bounds never change after the build: only
            # the mutable parameters need checking on each re-plan
            updates = self._solver.config.auto_updates
            updates.check_for_new_or_removed_constraints = False
            updates.check_for_new_or_removed_vars = False
            updates.check_for_new_or_removed_params = False
            updates.check_for_new_objective = False
            updates.update_constraints = False
            updates.update_vars = False
            updates.update_named_expressions = False
        try:
            result = self._solver.solve(
                self.model,
                threads=opts.threads,
                rel_gap=opts.mip_gap,
                time_limit=opts.time_limit_s,
                solver_options={
                    "random_seed": opts.seed,
                    "mip_max_nodes": opts.node_limit,
                    **({} if opts.sub_mip_heuristics else HIGHS_MIP_OPTIONS),
                },
                raise_exception_on_nonoptimal_result=False,
                load_solutions=False,
            )
        except Exception as exc:  # noqa: BLE001  (a solver crash must not stop the run)
            return "failed", f"HiGHS failed: {exc}"
        tc = result.termination_condition
        has_solution = result.incumbent_objective is not None
        if has_solution:
            result.solution_loader.load_vars()
        if tc == TerminationCondition.convergenceCriteriaSatisfied:
            return "optimal", ""
        if has_solution and tc == TerminationCondition.iterationLimit:
            return "feasible", ""  # the node limit: a deterministic stop, not a fallback
        if has_solution:
            return "feasible", f"HiGHS stopped: {tc.name}; using the incumbent"
        return "failed", f"HiGHS: {tc.name} without a solution"

    def _extract(self, data: PlanInput, status: str, fleet: bool = False) -> Plan:
        """The solved plan; ``fleet``: from the fleet's counts (:meth:`_add_fleet_count`).

        A fleet-level solution gives each period's count and grid energy to vehicles by
        :func:`assign_counts`; its terms stay those of the solved model.
        """
        m = self.model
        nv, nt = self.num_vehicles, self.periods
        gv = np.array([[max(0.0, pyo.value(m.g[v, t])) for t in range(nt)] for v in range(nv)])
        if fleet:
            counts = [round(pyo.value(m.n[t])) for t in range(nt)]
            free = np.array([[pyo.value(m.avail[v, t]) for t in range(nt)] for v in range(nv)])
            work = np.array([[pyo.value(m.work[v, t]) for t in range(nt)] for v in range(nv)])
            cuts = [self._cuts(v, data.period_min) for v in data.vehicles]
            x, g, e = assign_counts(data, counts, gv.sum(axis=0), free, work, cuts)
        else:
            xv = np.array([[pyo.value(m.x[v, t]) for t in range(nt)] for v in range(nv)])
            x = round_plugged(xv, [pyo.value(m.ports[t]) for t in range(nt)])
            g = np.where(x, gv, 0.0)
            e = np.zeros((nv, nt))
            for v in range(nv):
                eff = data.vehicles[v].efficiency
                before = pyo.value(m.e0[v])
                for t in range(nt):
                    if t < self.binary_periods:
                        e[v, t] = pyo.value(m.E[v, t])
                    else:  # the rounded tail: energies follow its grid energies
                        e[v, t] = before + eff * g[v, t] - pyo.value(m.work[v, t])
                    before = e[v, t]
        terms = {
            "energy_cost": pyo.value(m.energy_cost),
            "demand_increment": pyo.value(m.demand_increment),
            "stored_value": pyo.value(m.stored_value),
            "stored_port_h": pyo.value(m.stored_port_h),
            "shortfall_vh": pyo.value(m.shortfall_vh),
            "sessions": pyo.value(m.sessions),
            "occupied_port_h": pyo.value(m.occupied_port_h),
            "soc_slack_kwh": pyo.value(m.soc_slack),
            "reserve_slack_kwh": pyo.value(m.reserve_slack),
            "objective": pyo.value(m.objective),
        }
        ports = assign_ports(x, data.chargers, [v.port for v in data.vehicles])
        return expand_periods(Plan(status, x, g, e, ports, terms), data)

    def _fallback(self, data: PlanInput, message: str, shift: int) -> Plan:
        nv = self.num_vehicles
        reps = period_repeats(data)
        nt = int(reps.sum())  # plans are given in periods of period_min
        prev = self.previous
        if prev is not None and 0 < shift < nt:
            x = np.zeros((nv, nt), dtype=bool)
            g = np.zeros((nv, nt))
            e = np.zeros((nv, nt))
            x[:, : nt - shift] = prev.plugged[:, shift:]
            g[:, : nt - shift] = prev.grid_kwh[:, shift:]
            e[:, : nt - shift] = prev.energy_kwh[:, shift:]
            self.previous = None  # shift an old plan once only
            chargers = [
                PlanCharger(
                    c.charger_id,
                    c.ports,
                    c.power_kw,
                    None if c.available is None else list(np.repeat(c.available, reps)),
                )
                for c in data.chargers
            ]
            try:
                ports = assign_ports(x, chargers, [v.port for v in data.vehicles])
            except ValueError as exc:  # chargers failed since: the old plan does not fit
                message = f"{message}; previous plan unusable: {exc}"
            else:
                return Plan("previous", x, g, e, ports, {}, True, message=message)
        empty = np.zeros((nv, nt), dtype=bool)
        zeros = np.zeros((nv, nt))
        return Plan("fcfs", empty, zeros, zeros.copy(), [], {}, True, 0.0, message)


def block_periods(data: PlanInput, lengths_min: Sequence[float]) -> PlanInput:
    """A problem of periods of ``period_min`` merged into longer periods (move blocking).

    A block's price, needed vehicles and workers are the means over its periods, its base
    load the highest, each vehicle's work the sum; a charger is available and a demand
    charge looks at the block if it does in every (availability) or any (window) of its
    periods. Free windows are in minutes and stay as they are: a block is free to charge
    if one window covers all of it.

    Args:
        data: A problem whose periods are all ``period_min`` long.
        lengths_min: The blocks' lengths (minutes), multiples of ``period_min`` adding up to
            the horizon (:func:`coarse_tail_lengths`).

    Returns:
        The blocked problem; ``data`` itself if every block is one period.
    """
    reps = np.rint(np.asarray(lengths_min, dtype=float) / data.period_min).astype(int)
    if np.all(reps == 1):
        return data
    first = np.concatenate([[0], np.cumsum(reps)[:-1]])

    def total(values) -> list[float]:
        return [float(x) for x in np.add.reduceat(np.asarray(values, dtype=float), first)]

    def mean(values) -> list[float]:
        return [x / k for x, k in zip(total(values), reps, strict=True)]

    def highest(values) -> list[float]:
        return [float(x) for x in np.maximum.reduceat(np.asarray(values, dtype=float), first)]

    def every(flags) -> list[bool] | None:
        if flags is None:
            return None
        return [bool(x) for x in np.minimum.reduceat(np.asarray(flags, dtype=float), first)]

    def any_of(flags) -> list[bool] | None:
        return None if flags is None else [x > 0 for x in highest(flags)]

    return replace(
        data,
        price_per_kwh=mean(data.price_per_kwh),
        base_load_kw=highest(data.base_load_kw),
        vehicles=[
            replace(v, work_kwh=None if v.work_kwh is None else total(v.work_kwh))
            for v in data.vehicles
        ],
        chargers=[replace(c, available=every(c.available)) for c in data.chargers],
        needed_vehicles=None if data.needed_vehicles is None else mean(data.needed_vehicles),
        workers=None if data.workers is None else mean(data.workers),
        demand_charges=[replace(d, in_window=any_of(d.in_window)) for d in data.demand_charges],
        period_lengths_min=[float(x) for x in lengths_min],
    )


def period_repeats(data: PlanInput) -> np.ndarray:
    """How many periods of ``period_min`` each of the problem's periods spans.

    Raises:
        ValueError: if a period's length is not a multiple of ``period_min``.
    """
    ratio = data.lengths_min() / float(data.period_min)
    reps = np.rint(ratio).astype(int)
    if np.any(reps < 1) or np.any(np.abs(ratio - reps) > 1e-9):
        raise ValueError(
            f"period_lengths_min = {list(data.period_lengths_min)}: every length must be a "
            f"multiple of period_min = {data.period_min}"
        )
    return reps


def expand_periods(plan: Plan, data: PlanInput) -> Plan:
    """A plan of the problem's periods given in periods of ``period_min``.

    A longer period's plug-in decision and port are repeated, its grid energy spread evenly
    and its battery energy interpolated linearly. Plans of uniform periods are returned
    as they are.
    """
    reps = period_repeats(data)
    if np.all(reps == 1):
        return plan
    start = np.array([v.soc * v.capacity_kwh for v in data.vehicles])
    before = np.column_stack([start, plan.energy_kwh[:, :-1]])
    steps = np.concatenate([(np.arange(k) + 1.0) / k for k in reps])
    energy = np.repeat(before, reps, axis=1) + steps * np.repeat(
        plan.energy_kwh - before, reps, axis=1
    )
    ports = [[p for p, k in zip(row, reps, strict=True) for _ in range(k)] for row in plan.ports]
    return Plan(
        plan.status,
        np.repeat(plan.plugged, reps, axis=1),
        np.repeat(plan.grid_kwh / reps, reps, axis=1),
        energy,
        ports,
        plan.terms,
        plan.fallback,
        plan.solve_s,
        plan.message,
    )


def round_plugged(x: np.ndarray, ports: Sequence[float]) -> np.ndarray:
    """Plugged-in booleans from solved ``[vehicle, period]`` values, some of them relaxed.

    In each period the vehicles with ``x >= 0.5`` are plugged in, the largest first, at most
    ``ports[t]`` of them (binary periods already satisfy this; relaxed ones may not).
    """
    out = np.zeros(x.shape, dtype=bool)
    for t in range(x.shape[1]):
        order = np.argsort(-x[:, t], kind="stable")
        cap = int(round(ports[t]))
        chosen = [v for v in order[:cap] if x[v, t] >= 0.5]
        out[chosen, t] = True
    return out


def assign_counts(
    data: PlanInput,
    counts: Sequence[int],
    budget_kwh: Sequence[float],
    free: np.ndarray,
    work_kwh: np.ndarray,
    cuts: Sequence[Sequence[tuple[float, float]]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vehicles and grid energies for a fleet-level plan: so many plugged in, so much energy.

    Period by period: vehicles already plugged in stay while there are places and they are
    below the CC-CV knee, the least charged first; the other places go to the free vehicles
    with the least energy. Each gets the grid energy its power limit, its CC-CV cuts and its
    room below ``max_soc`` allow, all scaled down to the period's budget; the energies follow
    the dynamics of the full model. So the arrays keep every per-vehicle bound, with at most
    ``counts[t]`` plugged in and at most ``budget_kwh[t]`` drawn.

    Args:
        data: The problem (periods of ``period_min``).
        counts: Vehicles to plug in, per period.
        budget_kwh: The fleet's grid energy, per period (kWh).
        free: ``[vehicle, period]`` 1 where the vehicle is free to charge.
        work_kwh: ``[vehicle, period]`` consumption (kWh).
        cuts: Per vehicle, its CC-CV cuts ``(a, b)`` for a period of ``period_min``.

    Returns:
        ``(plugged, grid_kwh, energy_kwh)``, each ``[vehicle, period]``.
    """
    vs = data.vehicles
    nv, nt = len(vs), len(counts)
    dt_h = data.period_min / 60.0
    taper = [
        [c for c in vc if c[1] < -1e-9] or [(v.max_power_kw * dt_h * v.efficiency, 0.0)]
        for v, vc in zip(vs, cuts, strict=True)
    ]
    energy = np.array([v.soc * v.capacity_kwh for v in vs])
    top = np.array([v.max_soc * v.capacity_kwh for v in vs])
    knee = np.array([v.knee_soc * v.capacity_kwh for v in vs])
    x = np.zeros((nv, nt), dtype=bool)
    g = np.zeros((nv, nt))
    e = np.zeros((nv, nt))
    eff = np.array([v.efficiency for v in vs])
    plugged = np.array([v.plugged for v in vs])
    for t in range(nt):
        able = free[:, t].astype(bool) & (energy < top - 1e-6)
        stay = sorted(
            np.flatnonzero(able & plugged & (energy < knee)),
            key=lambda i: energy[i] / vs[i].capacity_kwh,
        )
        chosen = stay[: counts[t]]
        rest = sorted(
            np.flatnonzero(able & ~plugged), key=lambda i: (energy[i] / vs[i].capacity_kwh, i)
        )
        chosen += rest[: counts[t] - len(chosen)]
        want = {}
        for i in chosen:
            v = vs[i]
            cap = min(
                v.max_power_kw * dt_h,
                min(a + b * energy[i] for a, b in taper[i]) / v.efficiency,
                (top[i] - energy[i] + work_kwh[i, t]) / v.efficiency,
            )
            want[i] = max(0.0, cap)
        total = sum(want.values())
        scale = min(1.0, budget_kwh[t] / total) if total > 0 else 0.0
        plugged = np.zeros(nv, dtype=bool)
        for i in chosen:
            x[i, t] = True
            plugged[i] = True
            g[i, t] = want[i] * scale
        energy = energy + eff * g[:, t] - work_kwh[:, t]
        e[:, t] = energy
    return x, g, e


def assign_ports(
    plugged: np.ndarray,
    chargers: Sequence[PlanCharger],
    current: Sequence[tuple[str, int] | None] = (),
) -> list[list[tuple[str, int] | None]]:
    """Give every plugged-in (vehicle, period) a port; a vehicle keeps its port while plugged.

    Greedy by period: vehicles continuing a session (or plugged in now, ``current``) keep
    their port if it still works; the others take the lowest free port. The plan has at most
    as many vehicles plugged in per period as working ports, so a port is always found.

    Raises:
        ValueError: if a period has more plugged-in vehicles than working ports.
    """
    nv, nt = plugged.shape
    out: list[list[tuple[str, int] | None]] = [[None] * nt for _ in range(nv)]
    now = list(current) + [None] * (nv - len(current))
    for t in range(nt):
        working = [
            (c.charger_id, p)
            for c in chargers
            if c.available is None or c.available[t]
            for p in range(c.ports)
        ]
        free = list(working)
        keep = []
        for v in range(nv):
            before = out[v][t - 1] if t > 0 else now[v]
            if plugged[v, t] and before is not None and before in free:
                out[v][t] = before
                free.remove(before)
            elif plugged[v, t]:
                keep.append(v)
        for v in keep:
            if not free:
                raise ValueError(f"period {t}: more vehicles plugged in than working ports")
            out[v][t] = free.pop(0)
    return out


def plan_charging(data: PlanInput, options: SolverOptions | None = None) -> Plan:
    """Solve one charging problem (builds a planner for it).

    Args:
        data: The problem, as plain data.
        options: Solver options (default: HiGHS, 1 % gap).

    Returns:
        The plan, with its objective terms.
    """
    planner = ChargingPlanner(
        len(data.vehicles), data.periods, len(data.demand_charges), options=options
    )
    return planner.solve(data)
