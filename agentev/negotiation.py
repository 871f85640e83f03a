"""The charging-slot protocol between vehicles and chargers (contract net).

A vehicle that will need energy sends a :class:`CallForProposals` to every charger with its
urgency (state of charge, energy margin, when it can leave work). Each charger answers from
its :class:`SlotBook` with a :class:`Proposal` (port, start, end, expected energy, queue
position, price in the slot) or a :class:`Refuse`. The vehicle accepts the best proposal by
its utility (see :mod:`agentev.strategies.negotiation`) with an :class:`Accept`; the charger
books it and answers :class:`Confirm`, or :class:`Reject` if the slot was taken meanwhile,
and the vehicle starts a new round. A booking is given up by the vehicle with a
:class:`Release`, or cancelled by the charger with a :class:`Cancel`: when a more urgent
vehicle displaces a booking that has not started, when the vehicle does not show up within
the grace time, or when the charger fails.

Every message is a small frozen dataclass, delivered by the :class:`MessageBus` as a scheduled
event ``latency`` minutes after it is sent (the scenario's ``message_latency_s``), never as a
direct call, and logged with its send and delivery times (``messages.jsonl``).

Slot times are whole minutes: a port freed at ``t`` takes the next vehicle from ``ceil(t)``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar

from agentev.battery import charge_minutes

if TYPE_CHECKING:
    from agentev.agents.charger import Charger
    from agentev.agents.vehicle import Vehicle
    from agentev.model import FactoryModel

#: A booking that has not started may be displaced by a request whose energy margin is this
#: much smaller (minutes of work left before ``min_soc``).
PRIORITY_MARGIN_MIN = 15.0
#: A booked vehicle that has not left for its slot this long after the slot's start loses it.
GRACE_MIN = 10.0


class Scheduler:
    """Schedules plain callables (closures, partials) as model events.

    Mesa's event list holds only weak references to its callables, so a closure scheduled
    directly would be collected before it runs; this keeps each one alive until it has run.
    """

    def __init__(self, model: FactoryModel) -> None:
        self.model = model
        self._pending: set[_Call] = set()

    def call(self, fn: Callable[[], None], *, at: float | None = None, after: float | None = None):
        """Run ``fn`` at ``at`` or ``after`` minutes from now (a Mesa event)."""
        item = _Call(fn, self._pending)
        self._pending.add(item)
        return self.model.schedule_event(item.run, at=at, after=after)


class _Call:
    __slots__ = ("fn", "pending", "__weakref__")

    def __init__(self, fn: Callable[[], None], pending: set) -> None:
        self.fn = fn
        self.pending = pending

    def run(self) -> None:
        self.pending.discard(self)
        self.fn()


# ----------------------------------------------------------------- messages
@dataclass(frozen=True)
class Message:
    """Common fields: who sends, who receives, and the vehicle's request and round."""

    kind: ClassVar[str] = "message"
    sender: str
    receiver: str
    vehicle_id: int
    request: int
    round: int


@dataclass(frozen=True)
class CallForProposals(Message):
    """A vehicle asks a charger for a slot.

    Attributes:
        free_at_min: When the vehicle can leave work (minutes).
        position: The vehicle's cell (the charger adds the driving time from it).
        duration_min: Charge duration on this charger's ports (whole minutes).
        energy_kwh: Energy the charge adds to the battery (kWh).
        soc: State of charge now.
        margin_min: Minutes of work left before ``min_soc`` (lower is more urgent).
    """

    kind: ClassVar[str] = "cfp"
    free_at_min: float
    position: tuple[int, int]
    duration_min: int
    energy_kwh: float
    soc: float
    margin_min: float


@dataclass(frozen=True)
class Proposal(Message):
    """A charger offers a slot.

    Attributes:
        charger_id: The charger.
        port: The port offered.
        start_min: Slot start (minutes).
        end_min: Slot end (minutes).
        travel_min: Driving time from the vehicle to the charger (minutes).
        energy_kwh: Energy expected in the slot (kWh).
        queue_position: Bookings at this charger that start before the slot.
        price_per_kwh: Mean energy price over the slot.
        displaces: Bookings the slot would displace (less urgent, not started).
    """

    kind: ClassVar[str] = "propose"
    charger_id: str
    port: int
    start_min: float
    end_min: float
    travel_min: float
    energy_kwh: float
    queue_position: int
    price_per_kwh: float
    displaces: tuple[int, ...]


@dataclass(frozen=True)
class Refuse(Message):
    """A charger has no slot to offer (it is out of order)."""

    kind: ClassVar[str] = "refuse"
    charger_id: str
    reason: str


@dataclass(frozen=True)
class Accept(Message):
    """The vehicle takes a proposal."""

    kind: ClassVar[str] = "accept"
    charger_id: str
    port: int
    start_min: float
    end_min: float
    margin_min: float
    displaces: tuple[int, ...]


@dataclass(frozen=True)
class Confirm(Message):
    """The charger booked the accepted slot."""

    kind: ClassVar[str] = "confirm"
    booking_id: int
    charger_id: str
    port: int
    start_min: float
    end_min: float


@dataclass(frozen=True)
class Reject(Message):
    """The accepted slot is no longer free (booked meanwhile, or the charger failed)."""

    kind: ClassVar[str] = "reject"
    charger_id: str
    reason: str


@dataclass(frozen=True)
class Release(Message):
    """The vehicle gives its booking back (charged, or no longer needed)."""

    kind: ClassVar[str] = "release"
    booking_id: int
    reason: str


@dataclass(frozen=True)
class Cancel(Message):
    """The charger cancels a booking: ``displaced``, ``no_show`` or ``charger_failure``."""

    kind: ClassVar[str] = "cancel"
    booking_id: int
    charger_id: str
    reason: str


def message_record(msg: Message, sent_min: float, delivered_min: float) -> dict[str, Any]:
    """One line of ``messages.jsonl``: times, type, then the message's fields."""
    fields = dataclasses.asdict(msg)
    for key, value in fields.items():
        if isinstance(value, tuple):
            fields[key] = list(value)
    return {"sent_min": sent_min, "delivered_min": delivered_min, "type": msg.kind, **fields}


class MessageBus:
    """Delivers messages as scheduled events after the latency, and logs every one.

    Args:
        model: The model whose event list delivers the messages.
        latency_min: Delivery latency (minutes).
    """

    def __init__(self, model: FactoryModel, latency_min: float) -> None:
        self.model = model
        self.latency_min = latency_min
        self.scheduler = Scheduler(model)
        self.handlers: dict[str, Callable[[Message], None]] = {}
        self.log: list[dict[str, Any]] = []

    def register(self, address: str, handler: Callable[[Message], None]) -> None:
        """Deliver messages addressed to ``address`` to ``handler``."""
        self.handlers[address] = handler

    def send(self, msg: Message) -> None:
        """Log ``msg`` and deliver it after the latency.

        Raises:
            KeyError: if nobody is registered at the receiver's address.
        """
        handler = self.handlers[msg.receiver]
        now = self.model.time
        self.log.append(message_record(msg, now, now + self.latency_min))
        self.scheduler.call(partial(handler, msg), after=self.latency_min)


# ----------------------------------------------------------------- the charger's side
@dataclass
class Booking:
    """An accepted slot (times in minutes).

    ``status``: ``booked`` (not started), ``departed`` (the vehicle is on its way or
    queueing), ``active`` (plugged in), then ``done``, ``released``, ``cancelled`` or
    ``no_show``.
    """

    booking_id: int
    vehicle_id: int
    charger_id: str
    port: int
    start_min: float
    end_min: float
    margin_min: float
    made_min: float
    status: str = "booked"

    @property
    def open(self) -> bool:
        """Whether the booking still holds its slot."""
        return self.status in ("booked", "departed", "active")

    def margin_now(self, now: float) -> float:
        """The booked vehicle's margin now, assuming it kept working since booking."""
        return self.margin_min - (now - self.made_min)


@dataclass
class SlotBook:
    """A charger's bookings, per port; open bookings on one port never overlap.

    Attributes:
        charger_id: The charger.
        ports: Number of ports.
        bookings: Every booking ever accepted, by id (closed ones keep their final times).
    """

    charger_id: str
    ports: int
    bookings: dict[int, Booking] = field(default_factory=dict)

    def open_bookings(self, port: int | None = None) -> list[Booking]:
        """Open bookings (on ``port``, or all), by start time."""
        out = [b for b in self.bookings.values() if b.open and (port is None or b.port == port)]
        return sorted(out, key=lambda b: (b.start_min, b.booking_id))

    def displaceable(self, b: Booking, margin_min: float, now: float) -> bool:
        """A booking a request of ``margin_min`` may displace: not started, less urgent."""
        return (
            b.status == "booked"
            and b.start_min > now
            and b.margin_now(now) > margin_min + PRIORITY_MARGIN_MIN
        )

    def find(
        self,
        earliest: float,
        duration: float,
        margin_min: float,
        now: float,
        busy_until: Sequence[float] = (),
    ) -> tuple[int, float, tuple[int, ...]] | None:
        """The earliest slot of ``duration`` from ``earliest``: ``(port, start, displaced)``.

        ``busy_until[port]``: no slot on the port starts before this time (a vehicle that is
        not in the book holds the port until then). Ties go to fewer displaced bookings,
        then the lower port. None if there are no ports.
        """
        best = None
        for port in range(self.ports):
            held = busy_until[port] if busy_until else -math.inf
            start0 = float(math.ceil(max(earliest, held) - 1e-9))
            on_port = self.open_bookings(port)
            blocking = [b for b in on_port if not self.displaceable(b, margin_min, now)]
            candidates = sorted({start0} | {b.end_min for b in blocking if b.end_min > start0})
            for s in candidates:
                e = s + duration
                if all(b.end_min <= s or b.start_min >= e for b in blocking):
                    gone = tuple(
                        b.booking_id
                        for b in on_port
                        if b not in blocking and b.start_min < e and b.end_min > s
                    )
                    key = (s, len(gone), port)
                    if best is None or key < best[0]:
                        best = (key, (port, s, gone))
                    break
        return None if best is None else best[1]

    def fits(
        self,
        port: int,
        start: float,
        end: float,
        displaces: tuple[int, ...],
        margin: float,
        now: float,
        busy_until: Sequence[float] = (),
    ) -> bool:
        """Whether ``[start, end)`` on ``port`` is free, given the bookings it may displace."""
        if busy_until and start < busy_until[port] - 1e-9:
            return False
        for b in self.open_bookings(port):
            if b.start_min < end and b.end_min > start:
                if b.booking_id not in displaces or not self.displaceable(b, margin, now):
                    return False
        return True

    def queue_position(self, start: float) -> int:
        """Open bookings at this charger starting before ``start``."""
        return sum(b.start_min < start for b in self.open_bookings())


class ChargerDesk:
    """A charger's side of the protocol: answers calls, books, confirms, cancels.

    Args:
        charger: The charger agent.
        bus: The message bus.
        price: Energy price at a minute, ``price(step)`` (the tariff's).
        next_id: Shared booking-id counter (a callable returning the next id).
        held_until: When a vehicle that is not in the book (sent by a central plan) leaves
            the port it holds, in minutes, or None to estimate it from its charge curve.
    """

    def __init__(
        self,
        charger: Charger,
        bus: MessageBus,
        price: Callable[[int], float],
        next_id: Callable[[], int],
        held_until: Callable[[Vehicle], float | None] | None = None,
    ) -> None:
        self.charger = charger
        self.held_until = held_until
        self.model = charger.model
        self.bus = bus
        self.price = price
        self.next_id = next_id
        self.address = f"charger:{charger.charger_id}"
        self.book = SlotBook(charger.charger_id, charger.num_ports)
        bus.register(self.address, self.receive)

    def receive(self, msg: Message) -> None:
        """Handle one delivered message."""
        if isinstance(msg, CallForProposals):
            self._propose(msg)
        elif isinstance(msg, Accept):
            self._accept(msg)
        elif isinstance(msg, Release):
            b = self.book.bookings.get(msg.booking_id)
            if b is not None and b.open:
                b.status = "released" if msg.reason != "charged" else "done"
                b.end_min = min(b.end_min, max(b.start_min, float(math.ceil(self.model.time))))

    def busy_until(self) -> list[float]:
        """Per port, the earliest time a booked slot may start, from the port's real state.

        A port is ready after its changeover. A vehicle plugged in or on its way that holds
        no open booking on the port (sent there by the twin controller's plan, not by the
        protocol) keeps it until ``held_until`` says, else until its charge would end at the
        port's power (its CC-CV curve, :func:`agentev.battery.charge_minutes`).
        """
        c, now = self.charger, self.model.time
        booked = {(b.vehicle_id, b.port) for b in self.book.open_bookings()}
        out = []
        for p in range(c.num_ports):
            until = c.ready_at[p]
            vehicle = c.occupant[p] or c.reserved[p]
            if vehicle is not None and (vehicle.unique_id, p) not in booked:
                held = self.held_until(vehicle) if self.held_until is not None else None
                if held is None:
                    kw = min(c.power_kw, vehicle.vtype.max_charge_power_kw)
                    b = vehicle.battery
                    held = now + charge_minutes(vehicle.vtype, b.soc, vehicle.charge_until, kw)
                until = max(until, held, now)
            out.append(until)
        return out

    def _reply(self, msg: Message, cls, **fields) -> None:
        self.bus.send(
            cls(
                sender=self.address,
                receiver=msg.sender,
                vehicle_id=msg.vehicle_id,
                request=msg.request,
                round=msg.round,
                **fields,
            )
        )

    def _propose(self, cfp: CallForProposals) -> None:
        cid = self.charger.charger_id
        if self.charger.failed:
            self._reply(cfp, Refuse, charger_id=cid, reason="out_of_order")
            return
        now = self.model.time
        layout = self.model.layout
        speed = self.model.vehicle_by_id[cfp.vehicle_id].vtype.speed_mps
        travel = layout.distance_m(cfp.position, self.charger.position) / speed / 60.0
        found = self.book.find(
            max(now, cfp.free_at_min) + travel,
            cfp.duration_min,
            cfp.margin_min,
            now,
            self.busy_until(),
        )
        if found is None:
            self._reply(cfp, Refuse, charger_id=cid, reason="no_ports")
            return
        port, start, gone = found
        end = start + cfp.duration_min
        steps = range(int(start) + 1, int(end) + 1)
        price = sum(self.price(s) for s in steps) / max(1, len(steps))
        self._reply(
            cfp,
            Proposal,
            charger_id=cid,
            port=port,
            start_min=start,
            end_min=end,
            travel_min=travel,
            energy_kwh=cfp.energy_kwh,
            queue_position=self.book.queue_position(start),
            price_per_kwh=price,
            displaces=gone,
        )

    def _accept(self, acc: Accept) -> None:
        cid = self.charger.charger_id
        now = self.model.time
        if self.charger.failed:
            self._reply(acc, Reject, charger_id=cid, reason="out_of_order")
            return
        if not self.book.fits(
            acc.port,
            acc.start_min,
            acc.end_min,
            acc.displaces,
            acc.margin_min,
            now,
            self.busy_until(),
        ):
            self._reply(acc, Reject, charger_id=cid, reason="slot_taken")
            return
        for booking_id in acc.displaces:
            b = self.book.bookings[booking_id]
            if b.open and b.start_min < acc.end_min and b.end_min > acc.start_min:
                self.cancel(b, "displaced")
        b = Booking(
            self.next_id(),
            acc.vehicle_id,
            cid,
            acc.port,
            acc.start_min,
            acc.end_min,
            acc.margin_min,
            now,
        )
        self.book.bookings[b.booking_id] = b
        self.bus.scheduler.call(partial(self._no_show_check, b), at=b.start_min + GRACE_MIN)
        self._reply(
            acc,
            Confirm,
            booking_id=b.booking_id,
            charger_id=cid,
            port=b.port,
            start_min=b.start_min,
            end_min=b.end_min,
        )

    def cancel(self, b: Booking, reason: str) -> None:
        """Cancel an open booking and tell its vehicle."""
        b.status = "no_show" if reason == "no_show" else "cancelled"
        self.bus.send(
            Cancel(
                sender=self.address,
                receiver=f"vehicle:{b.vehicle_id}",
                vehicle_id=b.vehicle_id,
                request=-1,
                round=-1,
                booking_id=b.booking_id,
                charger_id=b.charger_id,
                reason=reason,
            )
        )

    def _no_show_check(self, b: Booking) -> None:
        if b.status == "booked":
            self.cancel(b, "no_show")

    def charger_failed(self) -> None:
        """Cancel every open booking: the charger is out of order."""
        for b in self.book.open_bookings():
            self.cancel(b, "charger_failure")

    def tick(self, now: float) -> list[Booking]:
        """Keep the book in step with the ports; return active bookings that must end now.

        A plugged-in vehicle whose slot has ended keeps charging, its booking extended
        minute by minute, while the next booking on its port has not started; otherwise it
        is returned so the strategy releases it.
        """
        ending = []
        for b in self.book.open_bookings():
            if b.status != "active" or b.end_min > now + 1.0:
                continue
            following = [
                o
                for o in self.book.open_bookings(b.port)
                if o is not b and o.start_min >= b.start_min
            ]
            nxt = min((o.start_min for o in following), default=math.inf)
            if nxt > now + 2.0:
                b.end_min = max(b.end_min, float(math.ceil(now)) + 2.0)
            elif b.end_min <= now:
                ending.append(b)
        return ending
