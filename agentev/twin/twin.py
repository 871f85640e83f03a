"""The twin side: mirror the fleet from its telemetry, plan, and send charging commands.

:class:`Twin` subscribes to every vehicle's ``state`` and ``connection`` messages, checks
each against the official schema and agentev's ranges (a bad message is counted by reason
and dropped whole), keeps a :class:`~agentev.twin.mirror.FleetMirror`, and every
``optimization_interval_h`` of the plant's clock runs the
:class:`~agentev.optimization.controller.OptimizationController` on the mirrored state. Its
plan becomes bookings (the same :func:`~agentev.strategies.intelligent.bookings_from_plan` as
the ``intelligent`` strategy): at a booking's start the twin sends ``startCharging``
(charger, target state of charge), at its end ``stopCharging``. It sends nothing to a stale
vehicle, and never stops a charge, or sets its target, below the charge threshold plus
:data:`SAFETY_MARGIN` (the vehicle's own safety rule would send it straight back). The first
plan waits until every vehicle has reported (or its stale deadline has passed).

The twin's clock is the plant's: its clock ticks (``agentev plant``), which the twin
acknowledges after it has acted on them, so a plant in lockstep waits for it; for a fleet that
sends no ticks, the newest state's timestamp (minutes from the protocol's epoch, the run's
minute 0). A state stamped more than :data:`MAX_AHEAD_MIN` ahead of the clock is rejected.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agentev.model import FactoryModel
from agentev.optimization.controller import OptimizationController
from agentev.strategies.intelligent import Booking, bookings_from_plan
from agentev.twin.messages import (
    START_CHARGING,
    STOP_CHARGING,
    ChargeCommand,
    MessageError,
    count_rejection,
)
from agentev.twin.mirror import FleetMirror
from agentev.twin.plant import clock_topic, decode_tick, encode_tick
from agentev.twin.transport import Transport
from agentev.twin.vda5050 import VDA5050

#: The twin neither stops a charge nor ends one below the charge threshold plus this margin
#: (fraction): a vehicle released there falls below its threshold on its next drive and its
#: own safety rule sends it straight back to a charger.
SAFETY_MARGIN = 0.05
#: A state stamped further ahead of the twin's clock than this is rejected (minutes).
MAX_AHEAD_MIN = 60.0

LOG = logging.getLogger(__name__)


@dataclass
class TwinCounters:
    """What the twin received, rejected and sent."""

    received: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    commands_sent: int = 0
    plans: int = 0
    plan_fallbacks: int = 0
    connection: dict[str, str] = field(default_factory=dict)
    #: Wall-clock seconds from a tick's arrival to its commands' publication (minutes in
    #: which commands were sent), and whether that minute re-planned.
    loop_latency_s: list[float] = field(default_factory=list)
    loop_replan: list[bool] = field(default_factory=list)
    #: Wall-clock seconds of each re-plan (building the input and solving).
    plan_solve_s: list[float] = field(default_factory=list)


class Twin:
    """The digital twin of a fleet on the wire.

    Args:
        transport: Where to subscribe and publish.
        model: A model of the plant's scenario (same duration): the twin's static
            knowledge (fleet, chargers, layout, tariff, controller settings). Never stepped.
        protocol: The VDA 5050 version and names.
        control: Run the controller and send commands (False: only mirror).
        stale_after_s: Age of a vehicle's last state beyond which it is stale (simulated s).
        solver: The controller's solver (``highs`` or ``glpk``); None: the scenario's.
        forecaster: The controller's demand forecast: ``rate`` (the scenario's arrival
            rate) or ``none``. State messages carry a task only once a vehicle has it, so
            the twin sees no releases: a learned forecaster would have no past to read, and
            ``perfect`` would read the twin's own model's trace, not the plant's.
    """

    def __init__(
        self,
        transport: Transport,
        model: FactoryModel,
        protocol: VDA5050 | None = None,
        *,
        control: bool = True,
        stale_after_s: float = 180.0,
        solver: str | None = None,
        forecaster: str = "rate",
    ) -> None:
        if forecaster not in ("rate", "none"):
            raise ValueError(
                f"forecaster = {forecaster!r}: allowed: rate, none (the twin sees no task releases)"
            )
        self.transport = transport
        self.model = model
        self.protocol = protocol or VDA5050()
        self.control = control
        self.mirror = FleetMirror(model, stale_after_min=stale_after_s / 60.0)
        self.counters = TwinCounters()
        c = model.config.controller
        self.controller = OptimizationController(
            prediction_horizon=c.prediction_horizon_h,
            optimization_interval=c.optimization_interval_h,
            period_min=c.period_min,
            solver=solver or c.solver,
            forecaster=forecaster,
            forecast_quantile=c.forecast_quantile,
        )
        self.controller.attach(model)
        self.interval_min = c.optimization_interval_h * 60.0
        self.next_plan_min = 0.0
        self.bookings: dict[str, list[Booking]] = {}
        self._action_seq = 0
        self._header: dict[str, int] = {}
        self.ended = False
        self._ticks = False
        #: Per minute of the twin's clock: (time_min, vehicle_id, soc_estimate, stale).
        self.estimates: list[tuple[float, int, float, bool]] = []
        self._estimated_to = -1
        p = self.protocol
        transport.subscribe(p.subscription("state"), self._on_state)
        transport.subscribe(p.subscription("connection"), self._on_connection)
        transport.subscribe(clock_topic(p.manufacturer, "plant"), self._on_tick)

    # ----------------------------------------------------------------- receiving
    def _reject(self, reason: str, detail: str = "") -> None:
        count_rejection(self.counters.rejected, reason, detail, LOG)

    def handle(self, topic: str, payload: bytes) -> str:
        """Take one state message: its outcome (``applied``, ``duplicate``, ... or a reason).

        Never raises for a bad message: it is counted under its reason and changes nothing.
        """
        self.counters.received += 1
        try:
            serial, kind = self.protocol.parse_topic(topic)
            if kind != "state":
                raise MessageError("topic", f"topic = {topic!r}: allowed: a state topic")
            report = self.protocol.decode_state(payload)
            if report.serial != serial:
                raise MessageError(
                    "unknown", f"serialNumber = {report.serial!r} on the topic of {serial!r}"
                )
        except MessageError as exc:
            self._reject(exc.reason, f"{topic}: {exc}")
            return exc.reason
        ahead = report.time_min - self.mirror.now_min
        if ahead > MAX_AHEAD_MIN:
            # a stamp far ahead would stop the vehicle's later states as out of order
            self._reject(
                "range",
                f"{topic}: timestamp {ahead:.1f} min ahead of the twin's clock (minute "
                f"{self.mirror.now_min:g}); allowed: up to {MAX_AHEAD_MIN:g} (is the epoch, "
                "minute 0, the fleet's?)",
            )
            return "range"
        outcome = self.mirror.apply(report)
        if outcome == "applied" and not self._ticks and report.time_min > self.mirror.now_min:
            # a fleet without agentev's clock ticks: its newest state is the clock
            self.advance(report.time_min)
        if outcome == "unknown_vehicle":
            self._reject("unknown", f"{topic}: serial number {report.serial!r} not in the fleet")
        return outcome

    def _on_state(self, topic: str, payload: bytes) -> None:
        self.handle(topic, payload)

    def _on_connection(self, topic: str, payload: bytes) -> None:
        try:
            serial, state = self.protocol.decode_connection(payload)
        except MessageError as exc:
            self._reject(exc.reason, f"{topic}: {exc}")
            return
        if serial in self.mirror.vehicles:
            self.counters.connection[serial] = state

    def _on_tick(self, topic: str, payload: bytes) -> None:
        arrived = time.perf_counter()
        self._ticks = True
        try:
            t, end = decode_tick(payload)
        except MessageError as exc:
            self._reject(exc.reason, f"{topic}: {exc}")
            return
        if t < 0.0:  # the plant's handshake: acknowledge, nothing to do yet
            self.transport.publish(clock_topic(self.protocol.manufacturer, "twin"), payload)
            return
        plans = self.counters.plans
        sent = self.advance(t, act=not end)  # after the plant's last minute nobody listens
        if sent:
            self.counters.loop_latency_s.append(time.perf_counter() - arrived)
            self.counters.loop_replan.append(self.counters.plans > plans)
        self.transport.publish(clock_topic(self.protocol.manufacturer, "twin"), encode_tick(t, end))
        self.ended = self.ended or end

    # ----------------------------------------------------------------- control
    def advance(self, now_min: float, act: bool = True) -> int:
        """Move the clock to ``now_min``, re-plan if due, send due commands; commands sent.

        Args:
            now_min: The plant's clock (minutes).
            act: Plan and send commands (False: only mirror, e.g. on the plant's last tick).
        """
        self.mirror.advance(now_min)
        for minute in range(self._estimated_to + 1, int(math.floor(now_min + 1e-9)) + 1):
            for m in self.mirror.vehicles.values():
                if m.report is not None:
                    self.estimates.append((float(minute), m.vehicle_id, m.predict(minute), m.stale))
            self._estimated_to = minute
        if not (self.control and act):
            return 0
        heard = all(m.report is not None for m in self.mirror.vehicles.values())
        if (
            now_min >= self.next_plan_min - 1e-9
            and now_min < self.model.duration_min
            and (heard or now_min >= self.mirror.stale_after_min)
        ):
            # the first plan waits for every vehicle's state (or for the stale deadline)
            self.replan(now_min)
            self.next_plan_min = now_min + self.interval_min
        return self.send_due(now_min)

    def replan(self, now_min: float) -> None:
        """Plan on the mirrored state and keep its bookings."""
        state = self.mirror.twin_state()
        plan = self.controller.plan(state)
        self.counters.plans += 1
        self.counters.plan_solve_s.append(plan.solve_s)
        self.counters.plan_fallbacks += int(plan.fallback)
        views = state.vehicles
        ids = [v.vehicle_id for v in views]
        booked = bookings_from_plan(
            plan,
            now_min,
            self.controller.period_min,
            ids,
            [v.capacity_kwh for v in views],
            [self.mirror.vehicles_by_id[vid].vtype.max_soc for vid in ids],
        )
        self.bookings = {self.mirror.vehicles_by_id[vid].serial: b for vid, b in booked.items()}

    def _command(self, serial: str, kind: str, now_min: float, booking: Booking | None) -> None:
        self._action_seq += 1
        header = self._header.get(serial, 0) + 1
        self._header[serial] = header
        command = ChargeCommand(
            serial=serial,
            kind=kind,
            action_id=f"twin-{self._action_seq}",
            time_min=now_min,
            charger_id=booking.charger_id if booking is not None else None,
            target_soc=None
            if booking is None
            else min(
                max(booking.until_soc, self.model.config.charge_threshold + SAFETY_MARGIN),
                self.mirror.vehicles[serial].vtype.max_soc,
            ),
            header_id=header,
        )
        doc = self.protocol.encode_command(command)
        self.transport.publish(
            self.protocol.topic(serial, "instantActions"),
            self.protocol.dumps("instantActions", doc),
        )
        self.mirror.command_sent(serial, kind, command.action_id, now_min, command.target_soc)
        self.counters.commands_sent += 1

    def send_due(self, now_min: float) -> int:
        """Start booked sessions that are due and stop those past their end."""
        sent = 0
        floor = self.model.config.charge_threshold + SAFETY_MARGIN
        for serial, sessions in self.bookings.items():
            m = self.mirror.vehicles[serial]
            r = m.report
            if r is None or m.stale:
                continue
            active = next((b for b in sessions if b.start_min <= now_min + 1e-9 < b.end_min), None)
            soc = m.predict(now_min)
            if active is not None:
                if (
                    not r.charging
                    and not r.busy
                    and m.pending_start is None
                    and soc < active.until_soc - 1e-6
                    and (m.last_command is None or m.last_command[1] < active.start_min)
                ):
                    self._command(serial, START_CHARGING, now_min, active)
                    sent += 1
            elif (
                r.charging
                and soc >= floor
                and m.last_command is not None
                and m.last_command[0] == START_CHARGING
                and any(b.end_min <= now_min + 1e-9 for b in sessions)
            ):
                self._command(serial, STOP_CHARGING, now_min, None)
                sent += 1
        return sent

    # ----------------------------------------------------------------- running
    def serve(self, idle_timeout_s: float = 120.0) -> None:
        """Handle messages until the plant's last tick (or ``idle_timeout_s`` of silence)."""
        last = time.monotonic()
        while not self.ended:
            if self.transport.poll(0.5):
                last = time.monotonic()
            elif time.monotonic() - last > idle_timeout_s:
                raise TimeoutError(f"no message from the plant for {idle_timeout_s:g} s")

    def summary(self) -> dict[str, Any]:
        """The twin's metrics (JSON-ready): traffic, rejections, divergence, control."""
        c, mc = self.counters, self.mirror.counters
        errors = np.asarray(mc.soc_errors) if mc.soc_errors else np.zeros(1)
        latency = np.asarray(c.loop_latency_s) if c.loop_latency_s else np.zeros(1)
        applied = max(mc.applied, 1)
        return {
            "messages_received": c.received,
            "states_applied": mc.applied,
            "duplicates": mc.duplicates,
            "out_of_order": mc.out_of_order,
            "rejected": dict(sorted(c.rejected.items())),
            "soc_error_mean": float(errors.mean()),
            "soc_error_max": float(errors.max()),
            "state_mismatches": mc.mismatches,
            "state_mismatch_share": mc.mismatches / applied,
            "failed_actions": mc.failed_actions,
            "stale_vehicles_now": sum(m.stale for m in self.mirror.vehicles.values()),
            "plans": c.plans,
            "plan_fallbacks": c.plan_fallbacks,
            "commands_sent": c.commands_sent,
            "control_latency_s_median": float(np.median(latency)),
            "control_latency_s_p95": float(np.quantile(latency, 0.95)),
            "connection": dict(sorted(c.connection.items())),
        }


def estimates_csv(twin: Twin) -> str:
    """``time_min,vehicle_id,soc_estimate,stale`` rows of the twin's estimates."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["time_min", "vehicle_id", "soc_estimate", "stale"])
    for t, vid, soc, stale in twin.estimates:
        writer.writerow([repr(t), vid, repr(soc), int(stale)])
    return buf.getvalue()


def write_twin_outputs(twin: Twin, out_dir: str | Path) -> None:
    """``twin.json`` (metrics) and ``twin_estimates.csv`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "twin.json").write_text(json.dumps(twin.summary(), indent=2) + "\n")
    (out / "twin_estimates.csv").write_text(estimates_csv(twin))
