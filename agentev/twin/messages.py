"""What telemetry and commands say, independent of the protocol version.

A :class:`VehicleReport` is one vehicle's ``state`` message as the twin reads it, a
:class:`ChargeCommand` one ``startCharging`` / ``stopCharging`` instant action. The protocol
module (:mod:`agentev.twin.vda5050`) turns them into and out of JSON of one VDA 5050 version;
nothing else in :mod:`agentev.twin` knows a field name of the wire format.

Times are simulated minutes since the run's minute 0 (``time_min``); on the wire they are
ISO 8601 timestamps counted from :data:`EPOCH`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

#: Wall-clock time of the run's minute 0 on the wire (a Monday, UTC).
EPOCH = datetime(2026, 1, 5, tzinfo=UTC)

START_CHARGING = "startCharging"
STOP_CHARGING = "stopCharging"
COMMAND_KINDS = (START_CHARGING, STOP_CHARGING)


class MessageError(ValueError):
    """A message that is not valid JSON, fails its schema, or holds a value out of range.

    Attributes:
        reason: A short category for counting (``json``, ``schema``, ``range``, ``unknown``).
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


#: Rejections of each reason logged one by one; after them, every :data:`LOG_EVERY`-th.
LOG_FIRST, LOG_EVERY = 10, 1000


def count_rejection(counts: dict[str, int], reason: str, detail: str, log: logging.Logger) -> None:
    """Count a rejected message under ``reason`` and log it (a flood is thinned out)."""
    n = counts.get(reason, 0) + 1
    counts[reason] = n
    if n <= LOG_FIRST or n % LOG_EVERY == 0:
        log.warning("rejected (%s, #%d): %s", reason, n, detail[:300])


def timestamp(time_min: float, epoch: datetime = EPOCH) -> str:
    """The wire timestamp of minute ``time_min`` after ``epoch`` (ISO 8601, UTC, ms)."""
    moment = (epoch + timedelta(milliseconds=round(time_min * 60_000.0))).astimezone(UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def time_min_of(stamp: str, epoch: datetime = EPOCH) -> float:
    """Minutes from ``epoch`` to a wire timestamp.

    Raises:
        MessageError: if ``stamp`` is not an ISO 8601 date-time with a time zone.
    """
    try:
        moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except (TypeError, ValueError, AttributeError):
        raise MessageError(
            "schema", f"timestamp = {stamp!r}: allowed: an ISO 8601 date-time"
        ) from None
    if moment.tzinfo is None:
        raise MessageError(
            "schema", f"timestamp = {stamp!r}: allowed: a date-time with a UTC offset or Z"
        )
    return (moment - epoch).total_seconds() / 60.0


def serial_number(vehicle_type: str, vehicle_id: int) -> str:
    """The serial number a vehicle reports under, e.g. ``agv-001``."""
    return f"{vehicle_type}-{vehicle_id:03d}"


@dataclass(frozen=True, slots=True)
class ActionState:
    """The status of one instant action, as a vehicle reports it."""

    action_id: str
    action_type: str
    status: str  # WAITING, INITIALIZING, RUNNING, FINISHED, FAILED
    result: str = ""


@dataclass(frozen=True, slots=True)
class VehicleReport:
    """One vehicle's state message.

    Attributes:
        serial: Serial number (``agv-001``).
        header_id: The sender's message counter (increases by one per state message).
        time_min: When the state was sampled (simulated minutes).
        soc: State of charge (fraction, 0..1; ``batteryCharge`` / 100 on the wire).
        charging: Plugged in and charging.
        driving: Moving.
        loaded: Carrying a load.
        busy: Working on a transport order (nodes or edges of it left).
        order_id: The transport order's id (``""`` if none yet).
        node_id: The last node reached: a station or charger id, or ``""``.
        x_m: Position (m, map frame).
        y_m: Position (m, map frame).
        actions: Status of the instant actions received.
        errors: Error types reported.
    """

    serial: str
    header_id: int
    time_min: float
    soc: float
    charging: bool
    driving: bool = False
    loaded: bool = False
    busy: bool = False
    order_id: str = ""
    node_id: str = ""
    x_m: float = 0.0
    y_m: float = 0.0
    actions: tuple[ActionState, ...] = ()
    errors: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ChargeCommand:
    """A ``startCharging`` or ``stopCharging`` instant action for one vehicle.

    Attributes:
        serial: The vehicle's serial number.
        kind: :data:`START_CHARGING` or :data:`STOP_CHARGING`.
        action_id: Unique id of the action (the vehicle reports its status under it).
        time_min: When the twin issued it (simulated minutes).
        charger_id: Where to charge (start only; ``None``: the vehicle's choice).
        target_soc: State of charge at which to stop (fraction; start only; ``None``: full).
    """

    serial: str
    kind: str
    action_id: str
    time_min: float
    charger_id: str | None = None
    target_soc: float | None = None
    header_id: int = field(default=0, compare=False)
