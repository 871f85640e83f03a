"""``intelligent``: the twin controller's rolling-horizon plan overrides the vehicles' rule.

Every ``optimization_interval_h`` (and when an event makes the plan stale: a vehicle below
its safety margin, a charger failure, ``BACKLOG_REPLAN`` tasks waiting for a vehicle while
vehicles charge) the twin controller observes a :class:`TwinState`, the
:class:`~agentev.optimization.controller.OptimizationController` solves the charging MILP, and
this strategy turns the plan into bookings: per vehicle, the planned sessions (start, end,
charger, port, target state of charge). A booked vehicle is sent to its charger one travel
time before the planned plug-in, as soon as it is free; it is released at the planned end.
A lithium-ion vehicle is not released before: if it reaches the plan's state of charge early
(the plan spreads the fleet's work evenly, so a real vehicle often arrives fuller than
planned) it keeps charging at the planned power until then. Ending such sessions at the
plan's state of charge made heavy runs plug in 205 times a day rather than 140 (seeds 0-3),
each early end a later extra session, and gave a weighted objective of 1.963 rather than
1.843. A lead-acid session still ends at the plan's state of charge: its charger follows its
own profile and it is not released mid-charge, so held to the planned end it kept ports from
the AGVs (flexible, 30 seeds: shortfall 182 rather than 97 vehicle-h, and SoC violations).
While it charges, its grid power follows the plan: each period's planned grid energy over the
period length is its power setpoint (lithium-ion only; a lead-acid charger follows its own
profile), so the site's peaks are the plan's and not every vehicle's full power at once.

The vehicles' own negotiation is the safety net: a vehicle below ``min_soc + SAFETY_MARGIN``
negotiates a slot with the chargers (the protocol of
:mod:`agentev.strategies.negotiation`, logged in ``messages.jsonl``) and makes the plan
stale. When a plan charges such a vehicle no later than its negotiated slot, before it has
left for it, the plan overrides the booking: the vehicle gives it back (``Release``, reason
``override``) and the override is recorded (``booking_overridden``). If a solve fails with
no usable plan, the ``fcfs`` rule runs until the next plan.

An override is a (vehicle, period) where the plan's command differs from the vehicle's own
rule; each is recorded at the period's start with its reason: ``opportunity_charge`` (the
plan charges above the threshold), ``defer_charge`` (the rule would charge, the plan does
not) or ``release_before_full`` (the plan ends a charge the rule would continue); and
``booking_overridden`` when a plan takes over a vehicle's negotiated booking.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from agentev.agents.controller import TwinState
from agentev.agents.vehicle import VehicleState
from agentev.optimization.controller import OptimizationController
from agentev.optimization.planner import Plan
from agentev.strategies.fcfs import FirstComeFirstServed
from agentev.strategies.negotiation import Negotiation

#: A vehicle below ``min_soc + SAFETY_MARGIN`` charges by itself (and makes the plan stale).
SAFETY_MARGIN = 0.05
#: Tasks waiting for a vehicle that make the plan stale while a vehicle charges: a burst of
#: arrivals the rate forecast did not see (heavy, 16 seeds: weighted objective 1.866 without
#: the trigger, 1.808 / 1.779 / 1.786 / 1.799 at 1 / 2 / 3 / 5 tasks).
BACKLOG_REPLAN = 2
#: Minimum time between two event-triggered re-plans (minutes): one period. At 5 minutes
#: a heavy day re-planned 113 times in bursts (34 s a day); at 15, 72 times (11 s), with the
#: same weighted objective (6 seeds: 2.082 and 2.107, within their spread).
STALE_REPLAN_GAP_MIN = 15.0


@dataclass(frozen=True)
class Booking:
    """A planned charging session of one vehicle (times in minutes)."""

    start_min: float
    end_min: float
    charger_id: str
    port: int
    until_soc: float


def bookings_from_plan(
    plan: Plan, start_min: float, period_min: float, vehicle_ids, capacities, max_socs
) -> dict[int, list[Booking]]:
    """Planned sessions per vehicle: maximal runs of plugged-in periods."""
    out: dict[int, list[Booking]] = {}
    n_periods = plan.plugged.shape[1]
    for i, vid in enumerate(vehicle_ids):
        sessions = []
        t = 0
        while t < n_periods:
            if plan.plugged[i, t]:
                t0 = t
                while t < n_periods and plan.plugged[i, t]:
                    t += 1
                port = plan.ports[i][t0] if plan.ports else None
                if port is None:
                    continue
                target = plan.energy_kwh[i, t - 1] / capacities[i]
                sessions.append(
                    Booking(
                        start_min + t0 * period_min,
                        start_min + t * period_min,
                        port[0],
                        port[1],
                        float(min(max_socs[i], max(target, 0.0))),
                    )
                )
            else:
                t += 1
        out[vid] = sessions
    return out


class Intelligent(FirstComeFirstServed):
    """Charging by the twin controller's rolling-horizon MILP plan (see the module docstring)."""

    name = "intelligent"
    offline = False

    def __init__(self, model) -> None:
        super().__init__(model)
        c = model.config.controller
        self.optimizer = OptimizationController(
            prediction_horizon=c.prediction_horizon_h,
            optimization_interval=c.optimization_interval_h,
            period_min=c.period_min,
            solver=c.solver,
            forecaster=c.forecaster,
            forecast_quantile=c.forecast_quantile,
            warmup_days=c.warmup_days,
            task_log=c.task_log,
            tail_period_min=c.tail_period_min,
        )
        self.period_min = c.period_min
        self.bookings: dict[int, list[Booking]] = {}
        self.plan: Plan | None = None
        self.plan_start_min = 0.0
        self._index = {v.unique_id: i for i, v in enumerate(model.vehicles)}
        #: Bookings a vehicle has already been sent to: each is one session, never restarted
        #: (after reaching its target, standby drain must not start a new one).
        self._started: set[tuple[int, Booking]] = set()
        self.fcfs_mode = False
        self.replans: list[tuple] = []
        self.overrides: list[tuple] = []
        self._last_plan_min = -math.inf
        self._stale_pending = False
        #: The vehicles' own negotiation with the chargers: the safety net.
        self.protocol = Negotiation(
            model,
            ask_rule=self._asks,
            target_soc=self._safety_target,
            held_until=self._held_until,
        )
        if not self.offline:  # the hindsight plan is made once with its own whole-run planner
            self.optimizer.attach(model)

    # ----------------------------------------------------------------- planning
    def replan(self, trigger: str) -> None:
        """Observe, solve and turn the plan into bookings; release vehicles the plan stops."""
        model = self.model
        state = TwinState.observe(model)
        since = model.time - self._last_plan_min
        elapsed = max(1, int(round(since / self.period_min))) if math.isfinite(since) else 1
        plan = self.optimizer.plan(state, elapsed_periods=elapsed)
        self._last_plan_min = model.time
        self.replans.append(
            (
                model.time,
                trigger,
                plan.status,
                int(plan.fallback),
                plan.terms.get("objective", float("nan")),
                plan.solve_s * 1000.0,
                plan.message,
            )
        )
        self.apply(plan, model.time)

    def apply(self, plan: Plan, start_min: float) -> None:
        """Carry out a plan: bookings from it, and releases of vehicles it does not charge."""
        vehicles = self.model.vehicles
        self.fcfs_mode = plan.status == "fcfs"
        if self.fcfs_mode:
            self.bookings = {}
            self.plan = None
            for vehicle in vehicles:
                self._set_power(vehicle, None)
            return
        self.plan, self.plan_start_min = plan, start_min
        self.bookings = bookings_from_plan(
            plan,
            start_min,
            self.period_min,
            [v.unique_id for v in vehicles],
            [v.capacity_kwh for v in vehicles],
            [v.battery.max_soc for v in vehicles],
        )
        self._override_bookings(start_min)
        for vehicle in vehicles:
            if vehicle.state is VehicleState.CHARGING and self.booking(vehicle) is None:
                if not self._emergency(vehicle):
                    self._release(vehicle)
        self._follow_plan_power(int(math.floor(start_min)))

    def _override_bookings(self, now: float) -> None:
        """The plan takes over negotiated bookings it charges no later than."""
        for vehicle in self.model.vehicles:
            planned = self.booking(vehicle)
            agent = self.protocol.agents[vehicle.unique_id]
            if planned is None or not agent.busy:
                continue
            later = agent.booking is not None and agent.booking.start_min < planned.start_min
            if not later:
                self._override(vehicle, now)

    def _override(self, vehicle, now: float) -> None:
        """The plan takes over a vehicle's negotiation or booking; record it if it had one."""
        if self.protocol.override(vehicle):
            period = int(now // self.period_min)
            self.overrides.append(
                (float(now), vehicle.unique_id, period, 1, 1, "booking_overridden")
            )

    def request_replan(self, reason: str) -> None:
        """An event made the plan stale: re-plan now, at most every few minutes."""
        if self.offline or self._stale_pending:
            return
        wait = max(0.0, self._last_plan_min + STALE_REPLAN_GAP_MIN - self.model.time)
        self._stale_pending = True
        self._stale_reason = reason
        self.model.schedule_event(self._stale_replan, after=wait)

    def _stale_replan(self) -> None:
        self._stale_pending = False
        self.replan(self._stale_reason)

    # ----------------------------------------------------------------- bookings
    def booking(self, vehicle) -> Booking | None:
        """The vehicle's current or next booked session that has not ended."""
        now = self.model.time
        for b in self.bookings.get(vehicle.unique_id, ()):
            if b.end_min > now:
                return b
        return None

    def _booking_due(self, vehicle) -> Booking | None:
        """A booking the vehicle should leave for now (one travel time before it starts)."""
        b = self.booking(vehicle)
        if b is None or vehicle.soc >= b.until_soc - 1e-6:
            return None
        if (vehicle.unique_id, b) in self._started:
            return None
        charger = self.model.chargers.get(b.charger_id)
        if charger is None or charger.failed:
            return None
        lead = vehicle.travel_minutes(vehicle.position, charger.position)
        return b if self.model.time >= b.start_min - lead else None

    def _emergency(self, vehicle) -> bool:
        return vehicle.soc < vehicle.battery.min_soc + SAFETY_MARGIN

    # ----------------------------------------------------------------- strategy hooks
    def _asks(self, vehicle) -> bool:
        """The safety net's rule: below the margin (whatever the plan says)."""
        return (
            not self.fcfs_mode
            and self._emergency(vehicle)
            and vehicle.battery.may_start_charging(1.0)
        )

    def _safety_target(self, vehicle) -> float:
        """Where a safety-net charge ends: the threshold, at least twice the margin up.

        The plan charges a vehicle further if it wants to.
        """
        b = vehicle.battery
        return min(b.max_soc, max(self.threshold, b.min_soc + 2 * SAFETY_MARGIN))

    def _held_until(self, vehicle) -> float | None:
        """When a vehicle sent by the plan leaves its port: its planned session's end (min)."""
        b = self.booking(vehicle)
        if b is None:
            return None
        current = b.start_min <= self.model.time or (vehicle.unique_id, b) in self._started
        return b.end_min if current else None

    def needs_charge(self, vehicle) -> bool:
        """A booking is due, or the vehicle negotiates its own slot (or fcfs mode)."""
        if self.fcfs_mode:
            return super().needs_charge(vehicle)
        if self._booking_due(vehicle) is not None:
            return True
        return self.protocol.needs_charge(vehicle)

    def request(self, vehicle) -> None:
        """Go to the booked port (or the booked charger's queue); else negotiate a slot."""
        b = None if self.fcfs_mode else self._booking_due(vehicle)
        if b is None:
            if self.fcfs_mode:
                super().request(vehicle)
                return
            if self._emergency(vehicle):
                self.request_replan("safety_margin")
            self.protocol.request(vehicle)
            return
        self._override(vehicle, self.model.time)
        if vehicle in self.queue:
            self.queue.remove(vehicle)
        self._started.add((vehicle.unique_id, b))
        charger = self.model.chargers[b.charger_id]
        free = charger.free_port()
        booked_free = charger.reserved[b.port] is None and charger.occupant[b.port] is None
        port = b.port if booked_free else free
        if port is not None and charger.ready_at[port] > self.model.time:
            port = None
        power = None if vehicle.battery.lead_acid else self.planned_power_kw(vehicle, b.start_min)
        # a lithium-ion session lasts until its planned end (release), not until the plan's
        # state of charge; a lead-acid one, whose charger follows its own profile and which
        # is not released mid-charge, ends at the plan's (see the module docstring)
        until = vehicle.battery.max_soc
        if vehicle.battery.lead_acid:
            until = min(max(b.until_soc, vehicle.battery.min_soc), until)
        self.commands.charge(vehicle.unique_id, b.charger_id, until, port=port, power_kw=power)

    def on_step(self, t: int) -> None:
        """Release charges whose booking ended; record overrides at period starts."""
        self.protocol.on_step(t)
        if self.fcfs_mode:
            return
        self._unstick_waiting()
        self._honour_bookings()
        for vehicle in self.model.vehicles:
            if vehicle.state is VehicleState.CHARGING and self.booking(vehicle) is None:
                if not self._emergency(vehicle):  # a safety-net charge ends above the margin
                    self._release(vehicle)
        if (t % self.period_min) < 1e-9:
            self._record_overrides(t)
        if len(self.model.dispatcher.backlog) >= BACKLOG_REPLAN and any(
            v.state is VehicleState.CHARGING for v in self.model.vehicles
        ):
            self.request_replan("backlog")
        self._follow_plan_power(t)

    def _unstick_waiting(self) -> None:
        """A vehicle waiting at its parking place whose negotiation the plan took over."""
        for vehicle in self.model.vehicles:
            if (
                vehicle.state is not VehicleState.QUEUED
                or vehicle.target_charger is not None
                or vehicle in self.queue
                or self.protocol.holds_booking(vehicle)
            ):
                continue
            if self._booking_due(vehicle) is not None or self._asks(vehicle):
                self.request(vehicle)
            else:
                self.commands.release(vehicle.unique_id)  # back to work

    def _honour_bookings(self) -> None:
        """The safety net comes before the plan: a plan's vehicle at a charger makes way.

        It makes way for a vehicle queueing there whose negotiated slot has begun, or that
        is below the safety margin. The vehicle making way is the fullest plan vehicle on
        the charger's ports (for a negotiated slot, the one on the booked port); not one
        itself below the safety margin, nor a lead-acid one mid-charge. The plan is then
        stale.
        """
        now = self.model.time
        for charger in self.model.chargers.values():
            for vehicle in list(charger.queue):
                agent = self.protocol.agents[vehicle.unique_id]
                booking = agent.booking
                if booking is not None and agent.departed and booking.start_min <= now:
                    if booking.charger_id != charger.charger_id:
                        continue
                    holders = [charger.occupant[booking.port]]
                elif self._emergency(vehicle) and not agent.busy:
                    holders = list(charger.occupant)
                else:
                    continue
                movable = self._movable(holders)
                if movable:
                    self._release(max(movable, key=lambda h: (h.soc, -h.unique_id)))
                    self.request_replan("safety_net_priority")
                elif self._emergency(vehicle) and self._send_elsewhere(vehicle, charger):
                    self.request_replan("safety_net_priority")

    def _movable(self, holders) -> list:
        """The holders that may make way.

        Not one on a negotiated slot, nor one itself below the safety margin, nor a lead-acid
        battery mid-charge.
        """
        return [
            h
            for h in holders
            if h is not None
            and not self.protocol.holds_booking(h)
            and not self._emergency(h)
            and not (h.battery.lead_acid and h.soc < h.charge_until)
        ]

    def _send_elsewhere(self, vehicle, charger) -> bool:
        """Send a vehicle below the safety margin, queued where no holder may make way, elsewhere.

        It takes the port that another charger's fullest movable holder gives up, and gives
        its own negotiated booking back (flexible seed 8: an AGV waited 100 minutes behind a
        lead-acid forklift, and standby power took it below its ``min_soc``).

        Returns:
            Whether the vehicle was sent.
        """
        candidates = [
            (h, other)
            for other in self.model.chargers.values()
            if other is not charger and not other.failed
            for h in self._movable(other.occupant)
        ]
        if not candidates:
            return False
        holder, other = max(candidates, key=lambda c: (c[0].soc, -c[0].unique_id))
        port = other.occupant.index(holder)
        self._release(holder)
        if other.occupant[port] is not None or other.reserved[port] is not None:
            return False
        self.protocol.give_back(vehicle, "safety_net")
        charger.cancel(vehicle)
        if vehicle in self.queue:
            self.queue.remove(vehicle)
        self.commands.charge(
            vehicle.unique_id, other.charger_id, self._safety_target(vehicle), port=port
        )
        return True

    def planned_power_kw(self, vehicle, t: float) -> float | None:
        """The plan's grid power for a vehicle charging on its booking at ``t`` (kW), or None.

        None when the vehicle charges outside a booking (its own safety rule) or the plan
        does not cover ``t``.
        """
        b = self.booking(vehicle)
        if self.plan is None or b is None or not b.start_min <= t < b.end_min:
            return None
        k = int((t - self.plan_start_min) // self.period_min)
        if not 0 <= k < self.plan.grid_kwh.shape[1]:
            return None
        return float(self.plan.grid_kwh[self._index[vehicle.unique_id], k]) * 60.0 / self.period_min

    def _follow_plan_power(self, t: float) -> None:
        for vehicle in self.model.vehicles:
            if vehicle.state is VehicleState.CHARGING and not vehicle.battery.lead_acid:
                kw = None if self._emergency(vehicle) else self.planned_power_kw(vehicle, t)
                self._set_power(vehicle, kw)

    def _set_power(self, vehicle, kw: float | None) -> None:
        if vehicle.state is not VehicleState.CHARGING or vehicle.battery.lead_acid:
            return
        if vehicle.power_setpoint_kw != kw:
            self.commands.set_power(vehicle.unique_id, kw)

    def charger_failed(self, charger) -> None:
        """A charger failed: its negotiated bookings are cancelled and the plan is stale."""
        self.protocol.charger_failed(charger)
        self.request_replan("charger_failure")

    @property
    def messages(self) -> list[dict]:
        """The safety net's negotiation messages (``messages.jsonl``)."""
        return self.protocol.messages

    def _release(self, vehicle) -> None:
        # chemistry rule: a lead-acid battery charges to its target once started
        if vehicle.battery.lead_acid and vehicle.soc < vehicle.charge_until:
            return
        if vehicle in self.queue:  # a released vehicle goes back to work: not served later
            self.queue.remove(vehicle)
        self.commands.release(vehicle.unique_id)

    def planned_now(self, vehicle, t: float) -> bool:
        """Whether the plan has the vehicle charging at ``t``."""
        b = self.booking(vehicle)
        return b is not None and b.start_min <= t < b.end_min

    def _record_overrides(self, t: int) -> None:
        period = int(t // self.period_min)
        for vehicle in self.model.vehicles:
            charging = vehicle.state is VehicleState.CHARGING
            rule = vehicle.soc < self.threshold or (
                charging and vehicle.soc < vehicle.battery.max_soc - 1e-9
            )
            planned = self.planned_now(vehicle, t)
            if planned == rule:
                continue
            if planned:
                reason = "opportunity_charge"
            elif charging:
                reason = "release_before_full"
            else:
                reason = "defer_charge"
            self.overrides.append(
                (float(t), vehicle.unique_id, period, int(planned), int(rule), reason)
            )
