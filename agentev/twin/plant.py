"""The plant side: a simulated shop floor that behaves like the real fleet on the wire.

:class:`Plant` runs a :class:`~agentev.model.FactoryModel` (with its own charging rule, by
default ``fcfs``: a vehicle below its threshold goes to charge by itself, as a real AGV's
on-board safety logic does) and, every ``state_period_s``, publishes each vehicle's VDA 5050
``state``, with optional SoC noise, latency and dropped messages. It obeys the
``startCharging`` / ``stopCharging`` instant actions it receives through the model's one
command interface (:class:`~agentev.agents.controller.FleetCommands`) and reports each
action's status in later states. :class:`Replay` publishes a recorded ``timeseries.csv``
instead.

**Time.** The plant's clock is the model's (simulated minutes; one step is one minute), so
state periods and latencies are whole simulated minutes or are rounded up to them: a state
sampled at minute ``t`` with latency ``L`` seconds is published after step
``t + ceil(L / 60)``; a command received at minute ``t`` is carried out after the latency,
before the step that starts at ``t + ceil(L / 60)``. After each minute the plant publishes a
clock tick (``agentev/<manufacturer>/clock/plant``); in **lockstep** it waits for the twin's
acknowledgement (``.../clock/twin``) before the next minute, so a run is the same with any
transport, and as fast as the two sides can go. Without lockstep it runs at ``speed``
simulated seconds per wall-clock second.

Noise, drops and the plant's randomness come from the stream ``SeedSequence(seed,
spawn_key=(2000,))``: the model's own streams are untouched, so the shop floor's tasks are
those of the same seed's offline run.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from agentev.agents.controller import CommandError
from agentev.agents.vehicle import VehicleState
from agentev.model import FactoryModel
from agentev.twin.messages import (
    START_CHARGING,
    ActionState,
    ChargeCommand,
    MessageError,
    VehicleReport,
    count_rejection,
    serial_number,
)
from agentev.twin.transport import Transport
from agentev.twin.vda5050 import VDA5050

PLANT_STREAM_KEY = 2000
#: The clock tick of the lockstep handshake, before minute 0.
HANDSHAKE_MIN = -1.0
CHARGE_STATES = (VehicleState.TO_CHARGER, VehicleState.QUEUED, VehicleState.CHARGING)
#: Action states a vehicle keeps reporting (the most recent ones).
ACTIONS_KEPT = 5

LOG = logging.getLogger(__name__)


def clock_topic(manufacturer: str, side: str) -> str:
    """The lockstep clock topic of ``side`` (``plant`` or ``twin``)."""
    return f"agentev/{manufacturer}/clock/{side}"


def encode_tick(time_min: float, end: bool = False) -> bytes:
    """A clock tick's payload."""
    return json.dumps({"time_min": float(time_min), "end": bool(end)}).encode()


def decode_tick(payload: bytes) -> tuple[float, bool]:
    """``(time_min, end)`` of a clock tick.

    Raises:
        MessageError: for a payload that is not a tick.
    """
    try:
        doc = json.loads(payload)
        t = float(doc["time_min"])
        end = bool(doc.get("end", False))
    except (ValueError, TypeError, KeyError) as exc:
        raise MessageError("json", f"clock tick: {exc}") from None
    if not math.isfinite(t):
        raise MessageError("range", f"clock tick time_min = {t!r}: allowed: a finite number")
    return t, end


@dataclass(frozen=True)
class PlantOptions:
    """How the simulated plant behaves on the wire.

    Attributes:
        state_period_s: Time between two state messages of a vehicle (simulated seconds, a
            positive multiple of 60: one model step is one minute).
        soc_noise: Standard deviation of the noise on reported states of charge (fraction).
        latency_s: Delay of every message in either direction (simulated seconds).
        drop_rate: Probability that a state message is lost (0..1).
        lockstep: Wait for the twin's acknowledgement of each minute.
        speed: Without lockstep: simulated seconds per wall-clock second.
        ack_timeout_s: In lockstep, how long to wait for the twin (wall-clock seconds).
    """

    state_period_s: float = 60.0
    soc_noise: float = 0.0
    latency_s: float = 0.0
    drop_rate: float = 0.0
    lockstep: bool = True
    speed: float = 600.0
    ack_timeout_s: float = 60.0

    def __post_init__(self) -> None:
        p = self.state_period_s
        if not (p >= 60.0 and math.isfinite(p) and abs(p / 60.0 - round(p / 60.0)) < 1e-9):
            raise ValueError(f"state_period_s = {p!r}: allowed: a positive multiple of 60 s")
        if not (0.0 <= self.soc_noise <= 0.5):
            raise ValueError(f"soc_noise = {self.soc_noise!r}: allowed: 0..0.5 (fraction)")
        if not (0.0 <= self.latency_s < 3600.0):
            raise ValueError(f"latency_s = {self.latency_s!r}: allowed: 0..3600 s")
        if not (0.0 <= self.drop_rate < 1.0):
            raise ValueError(f"drop_rate = {self.drop_rate!r}: allowed: 0 <= rate < 1")
        if not (self.speed > 0.0 and math.isfinite(self.speed)):
            raise ValueError(f"speed = {self.speed!r}: allowed: > 0 simulated s per s")

    @property
    def period_min(self) -> int:
        """State period in whole minutes."""
        return int(round(self.state_period_s / 60.0))

    @property
    def latency_min(self) -> int:
        """Latency in whole minutes (rounded up)."""
        return int(math.ceil(self.latency_s / 60.0 - 1e-9))


@dataclass
class PlantCounters:
    """What the plant sent and received."""

    states_sampled: int = 0
    states_published: int = 0
    states_dropped: int = 0
    commands_received: int = 0
    commands_applied: int = 0
    commands_failed: int = 0
    messages_rejected: dict[str, int] = field(default_factory=dict)


class Plant:
    """The simulated fleet, publishing telemetry and obeying charging commands.

    Args:
        transport: Where to publish and receive.
        model: The shop floor (a fresh :class:`FactoryModel`).
        options: Period, noise, latency, drops, lockstep.
        protocol: The VDA 5050 version and names.
        pump: In-process lockstep: called while waiting, to let the twin run in this thread.
    """

    def __init__(
        self,
        transport: Transport,
        model: FactoryModel,
        options: PlantOptions | None = None,
        protocol: VDA5050 | None = None,
        pump: Callable[[], Any] | None = None,
    ) -> None:
        self.transport = transport
        self.model = model
        self.options = options or PlantOptions()
        self.protocol = protocol or VDA5050()
        self.pump = pump
        self.rng = np.random.default_rng(
            np.random.SeedSequence(model.seed, spawn_key=(PLANT_STREAM_KEY,))
        )
        self.serials = {
            v.unique_id: serial_number(v.vtype.name, v.unique_id) for v in model.vehicles
        }
        self.vehicle_of = {s: vid for vid, s in self.serials.items()}
        self.header = dict.fromkeys(self.serials.values(), 0)
        self.actions: dict[str, deque[list[str]]] = {
            s: deque(maxlen=ACTIONS_KEPT) for s in self.serials.values()
        }
        #: action id -> (serial, kind) of starts still to report on
        self._starts: dict[str, str] = {}
        self.counters = PlantCounters()
        self._outbox: deque[tuple[int, str, bytes]] = deque()
        self._inbox: deque[tuple[int, ChargeCommand]] = deque()
        self._acked = -math.inf
        #: The clock of the messages (minutes); None: the model's.
        self.clock_min: float | None = None
        for serial in self.serials.values():
            transport.subscribe(
                self.protocol.subscription("instantActions", serial), self._on_actions
            )
        transport.subscribe(clock_topic(self.protocol.manufacturer, "twin"), self._on_ack)

    def now(self) -> float:
        """The plant's clock (simulated minutes)."""
        return float(self.model.time) if self.clock_min is None else self.clock_min

    # ----------------------------------------------------------------- receiving
    def _reject(self, reason: str, detail: str = "") -> None:
        count_rejection(self.counters.messages_rejected, reason, detail, LOG)

    def _on_actions(self, topic: str, payload: bytes) -> None:
        now = int(round(self.now()))
        try:
            serial, _ = self.protocol.parse_topic(topic)
            commands = self.protocol.decode_commands(payload)
        except MessageError as exc:
            self._reject(exc.reason, f"{topic}: {exc}")
            return
        for command in commands:
            if command.serial != serial or serial not in self.vehicle_of:
                self._reject("unknown", f"{topic}: command for {command.serial!r}")
                continue
            self.counters.commands_received += 1
            self._inbox.append((now + self.options.latency_min, command))

    def _on_ack(self, topic: str, payload: bytes) -> None:
        try:
            t, _ = decode_tick(payload)
        except MessageError as exc:
            self._reject(exc.reason, f"{topic}: {exc}")
            return
        self._acked = max(self._acked, t)

    # ----------------------------------------------------------------- commands
    def _record(self, serial: str, command: ChargeCommand, status: str, result: str = "") -> None:
        self.actions[serial].append([command.action_id, command.kind, status, result])
        if status == "FAILED":
            self.counters.commands_failed += 1
        else:
            self.counters.commands_applied += 1

    def apply(self, command: ChargeCommand) -> None:
        """Carry out one command now, through the model's command interface."""
        model = self.model
        serial = command.serial
        vehicle = model.vehicle_by_id[self.vehicle_of[serial]]
        if command.kind == START_CHARGING:
            if vehicle.state in CHARGE_STATES:
                self._record(serial, command, "FINISHED", "charging already")
                return
            chargers = model.chargers
            charger_id = command.charger_id
            if charger_id is None:
                charger_id = min(
                    (c for c in chargers.values() if not c.failed),
                    key=lambda c: model.layout.distance_m(vehicle.position, c.position),
                ).charger_id
            target = vehicle.battery.max_soc if command.target_soc is None else command.target_soc
            target = min(max(target, vehicle.battery.min_soc), vehicle.battery.max_soc)
            try:
                model.commands.charge(vehicle.unique_id, charger_id, target)
            except CommandError as exc:
                self._record(serial, command, "FAILED", str(exc))
                return
            self._record(serial, command, "WAITING")
            self._starts[command.action_id] = serial
        else:
            if vehicle.state not in CHARGE_STATES:
                self._record(serial, command, "FINISHED", "not charging")
                return
            try:
                model.commands.release(vehicle.unique_id)
            except CommandError as exc:
                self._record(serial, command, "FAILED", str(exc))
                return
            self._record(serial, command, "FINISHED")

    def _update_starts(self) -> None:
        """Report each start as RUNNING while plugged in and FINISHED once it ends."""
        for action_id, serial in list(self._starts.items()):
            vehicle = self.model.vehicle_by_id[self.vehicle_of[serial]]
            entry = next((a for a in self.actions[serial] if a[0] == action_id), None)
            if entry is None:
                del self._starts[action_id]
                continue
            if vehicle.state is VehicleState.CHARGING:
                entry[2] = "RUNNING"
            elif vehicle.state not in CHARGE_STATES:
                entry[2] = "FINISHED"
                del self._starts[action_id]

    # ----------------------------------------------------------------- telemetry
    def report(self, vehicle) -> VehicleReport:
        """The true state of one vehicle now, as a report (before noise)."""
        serial = self.serials[vehicle.unique_id]
        cell = self.model.layout.cell_size_m
        x, y = vehicle.position
        task = vehicle.task
        if vehicle.charger is not None:  # the last node: the charger, or the pick-up
            node = vehicle.charger.charger_id
        else:
            node = task.pickup if task is not None and vehicle.loaded else ""
        return VehicleReport(
            serial=serial,
            header_id=self.header[serial],
            time_min=self.now(),
            soc=vehicle.soc,
            charging=vehicle.state is VehicleState.CHARGING,
            driving=vehicle.moving,
            loaded=vehicle.loaded,
            busy=task is not None,
            order_id=f"task-{task.task_id}" if task is not None else "",
            node_id=node,
            x_m=x * cell,
            y_m=y * cell,
            actions=tuple(ActionState(*a) for a in self.actions[serial]),
        )

    def sample(self) -> None:
        """Sample every vehicle's state now into the outbox (noise and drops applied)."""
        for vehicle in self.model.vehicles:
            r = self.report(vehicle)
            self.header[r.serial] += 1
            self.counters.states_sampled += 1
            self.enqueue(r)

    def enqueue(self, report: VehicleReport) -> None:
        """Put a sampled report in the outbox, unless it is dropped; noise on its SoC."""
        o = self.options
        if o.drop_rate and self.rng.random() < o.drop_rate:
            self.counters.states_dropped += 1
            return
        if o.soc_noise:
            soc = float(np.clip(report.soc + self.rng.normal(0.0, o.soc_noise), 0.0, 1.0))
            report = replace(report, soc=soc)
        payload = self.protocol.dumps("state", self.protocol.encode_state(report))
        due = int(round(self.now())) + o.latency_min
        self._outbox.append((due, self.protocol.topic(report.serial, "state"), payload))

    def flush(self) -> None:
        """Publish the outbox's messages that are due."""
        now = int(round(self.now()))
        while self._outbox and self._outbox[0][0] <= now:
            _, topic, payload = self._outbox.popleft()
            self.transport.publish(topic, payload)
            self.counters.states_published += 1

    def _connection(self, state: str) -> None:
        for serial in self.serials.values():
            doc = self.protocol.encode_connection(serial, 0, self.now(), state)
            self.transport.publish(
                self.protocol.topic(serial, "connection"), self.protocol.dumps("connection", doc)
            )

    # ----------------------------------------------------------------- the run
    def _tick(self, end: bool = False) -> None:
        t = self.now()
        self.transport.publish(
            clock_topic(self.protocol.manufacturer, "plant"), encode_tick(t, end)
        )
        if not self.options.lockstep:
            self.transport.poll(0.0)
            return
        deadline = time.monotonic() + self.options.ack_timeout_s
        while self._acked < t:
            if self.pump is not None:
                self.pump()
                self.transport.poll(0.0)
            else:
                self.transport.poll(0.05)
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"the twin did not acknowledge minute {t:g} within "
                    f"{self.options.ack_timeout_s:g} s (is `agentev twin` running on the broker?)"
                )

    def handshake(self) -> None:
        """In lockstep, wait until a twin listens: tick minute -1 each second until acknowledged.

        Without it the first states could go out before the twin has subscribed (an MQTT
        broker keeps nothing for a subscriber that is not there yet).

        Raises:
            TimeoutError: no twin within ``ack_timeout_s``.
        """
        if not self.options.lockstep:
            return
        deadline = time.monotonic() + self.options.ack_timeout_s
        topic = clock_topic(self.protocol.manufacturer, "plant")
        while self._acked < HANDSHAKE_MIN:
            self.transport.publish(topic, encode_tick(HANDSHAKE_MIN))
            until = min(time.monotonic() + 1.0, deadline)
            while self._acked < HANDSHAKE_MIN and time.monotonic() < until:
                if self.pump is not None:
                    self.pump()
                self.transport.poll(0.05)
            if time.monotonic() >= deadline and self._acked < HANDSHAKE_MIN:
                raise TimeoutError(
                    f"no twin acknowledged the plant within {self.options.ack_timeout_s:g} s "
                    "(is `agentev twin` running on the broker?)"
                )

    def step(self) -> None:
        """Carry out due commands, simulate one minute, publish what is due, tick."""
        model = self.model
        now = int(round(model.time))
        while self._inbox and self._inbox[0][0] <= now:
            self.apply(self._inbox.popleft()[1])
        model.run_for(1)
        self._update_starts()
        if int(round(model.time)) % self.options.period_min == 0:
            self.sample()
        self.flush()

    def run(self) -> FactoryModel:
        """Run the scenario to its end on the wire; returns the model (for its outputs)."""
        model = self.model
        self.handshake()
        self._connection("ONLINE")
        self.sample()
        self.flush()
        self._tick()
        wall0 = time.monotonic()
        while model.time < model.duration_min:
            self.step()
            end = model.time >= model.duration_min
            if end:
                self._connection("OFFLINE")
            self._tick(end)
            if not self.options.lockstep:
                ahead = model.time * 60.0 / self.options.speed - (time.monotonic() - wall0)
                if ahead > 0:
                    time.sleep(ahead)
        return model

    def summary(self) -> dict[str, Any]:
        """The plant's counters (JSON-ready)."""
        c = self.counters
        return {
            "states_sampled": c.states_sampled,
            "states_published": c.states_published,
            "states_dropped": c.states_dropped,
            "commands_received": c.commands_received,
            "commands_applied": c.commands_applied,
            "commands_failed": c.commands_failed,
            "messages_rejected": dict(sorted(c.messages_rejected.items())),
        }


def write_plant_outputs(plant: Plant, out_dir: str | Path) -> None:
    """The model's outputs (``docs/outputs.md``) plus ``plant.json`` with the counters."""
    from agentev.outputs import write_outputs

    out = Path(out_dir)
    write_outputs(plant.model, out, cheapest=False)
    (out / "plant.json").write_text(json.dumps(plant.summary(), indent=2) + "\n")


class Replay:
    """Publish a recorded ``timeseries.csv`` as the fleet's state messages.

    Each row (``docs/outputs.md``) becomes a state at its ``time_min``: ``soc``, ``state``
    (charging, driving, busy with ``task_id``), ``x``, ``y`` (grid cells, times the scenario's
    cell size), ``charger_id``. Commands received are counted and not carried out (a record
    cannot obey). Clock ticks follow the recorded minutes, so a twin runs on it as on a live
    plant; in lockstep the replay waits for the twin's acknowledgements.

    Args:
        transport: Where to publish.
        path: The recorded ``timeseries.csv``.
        model: A model of the recorded scenario (vehicle types for the serial numbers, cell
            size); not stepped.
        options: Period (every ``period_min``-th recorded minute is published), lockstep,
            speed; noise, latency and drops are applied as by :class:`Plant`.
        protocol: The VDA 5050 version and names.
        pump: As for :class:`Plant`.
    """

    def __init__(
        self,
        transport: Transport,
        path: str | Path,
        model: FactoryModel,
        options: PlantOptions | None = None,
        protocol: VDA5050 | None = None,
        pump: Callable[[], Any] | None = None,
    ) -> None:
        import pandas as pd

        self.path = Path(path)
        frame = pd.read_csv(self.path, keep_default_na=False)
        needed = {"time_min", "vehicle_id", "state", "soc", "x", "y", "charger_id", "task_id"}
        missing = needed - set(frame.columns)
        if missing:
            raise ValueError(
                f"{self.path}: columns {sorted(missing)} missing: allowed: a timeseries.csv "
                "written by agentev (docs/outputs.md)"
            )
        known = {v.unique_id for v in model.vehicles}
        unknown = sorted(set(frame["vehicle_id"]) - known)
        if unknown:
            raise ValueError(
                f"{self.path}: vehicle_id {unknown[:5]} not in the scenario's fleet "
                f"({min(known)}..{max(known)}): replay it with its own scenario"
            )
        self.frame = frame
        self.plant = Plant(transport, model, options, protocol, pump)

    def _report(self, row: Any) -> VehicleReport:
        plant = self.plant
        serial = plant.serials[int(row.vehicle_id)]
        cell = plant.model.layout.cell_size_m
        task = str(row.task_id)
        state = str(row.state)
        return VehicleReport(
            serial=serial,
            header_id=plant.header[serial],
            time_min=float(row.time_min),
            soc=float(row.soc),
            charging=state == VehicleState.CHARGING.value,
            driving=state.startswith("to_"),
            loaded=state in ("to_dropoff", "unloading"),
            busy=task != "",
            order_id=f"task-{task}" if task else "",
            node_id=str(row.charger_id),
            x_m=float(row.x) * cell,
            y_m=float(row.y) * cell,
        )

    def run(self) -> Plant:
        """Publish the record to its end; returns the plant (its counters)."""
        plant, o = self.plant, self.plant.options
        plant.handshake()
        wall0 = time.monotonic()
        for minute, rows in self.frame.groupby("time_min", sort=True):
            plant.clock_min = float(minute)  # the record's clock (the model is not stepped)
            while plant._inbox:
                plant._inbox.popleft()
            if int(round(minute)) % o.period_min == 0:
                for row in rows.itertuples(index=False):
                    r = self._report(row)
                    plant.header[r.serial] += 1
                    plant.counters.states_sampled += 1
                    plant.enqueue(r)
            plant.flush()
            plant._tick(minute >= self.frame["time_min"].max())
            if not o.lockstep:
                ahead = float(minute) * 60.0 / o.speed - (time.monotonic() - wall0)
                if ahead > 0:
                    time.sleep(ahead)
        return plant
