"""``negotiation``: each vehicle negotiates its charging slot with the chargers.

This module is the vehicles' side of the contract-net protocol of :mod:`agentev.negotiation`
and the place to change how a vehicle negotiates. A vehicle:

1. **Asks** when its state of charge falls below ``charge_threshold`` (the threshold rule):
   a free vehicle at once, a working one while it finishes its job, so that its slot is
   booked by the time it is free. It sends a call for proposals to every charger with its
   urgency (state of charge, its *margin*: minutes of work left before ``min_soc``) and the
   time it can leave work (now if free, else after about one job). From then on it takes no
   new job.
2. **Chooses** when every charger has answered, the proposal of highest :func:`utility`:
   ``-(travel + waiting) - PRICE_WEIGHT_MIN * price * energy``, in minutes: a slot's price
   counts as much as ``PRICE_WEIGHT_MIN`` minutes per unit of currency. It accepts it.
   Chargers offer urgent vehicles earlier slots by displacing bookings of much less urgent
   ones that have not started (:data:`agentev.negotiation.PRIORITY_MARGIN_MIN`).
3. **Retries** on a rejection (the slot was taken meanwhile) with a new round, and after a
   round with no proposal (every charger out of order) after ``RETRY_MIN``.
4. **Leaves** one travel time before the slot starts (waiting at its parking place until
   then) and charges to ``max_soc``, or until the slot ends if the next booking on the port
   is due.
5. **Gives back** its booking when charged; a charger cancels a booking it displaced for a
   more urgent vehicle, after a no-show, or on a failure, and the vehicle asks again.

A vehicle holds at most one booking.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import count
from typing import TYPE_CHECKING

from agentev.agents.vehicle import FREE_STATES, VehicleState
from agentev.battery import charge_minutes
from agentev.negotiation import (
    Accept,
    CallForProposals,
    Cancel,
    ChargerDesk,
    Confirm,
    Message,
    MessageBus,
    Proposal,
    Refuse,
    Reject,
    Release,
)
from agentev.optimization.controller import job_profile
from agentev.strategies.base import ChargingStrategy

if TYPE_CHECKING:
    from agentev.agents.vehicle import Vehicle

#: How many minutes of travel and waiting one unit of currency of energy cost is worth.
PRICE_WEIGHT_MIN = 60.0
#: Wait before asking again after a round without any proposal (minutes).
RETRY_MIN = 5.0


def utility(p: Proposal, free_at_min: float) -> float:
    """A proposal's value to the vehicle, in minutes (higher is better)."""
    waiting = max(0.0, p.start_min - (free_at_min + p.travel_min))
    return -(p.travel_min + waiting) - PRICE_WEIGHT_MIN * p.price_per_kwh * p.energy_kwh


@dataclass
class VehicleNegotiator:
    """One vehicle's negotiation state.

    Attributes:
        request: Number of the current charge request (one per need).
        round: Round within the request (a new one after each rejection).
        free_at_min: When the vehicle said it can leave work, this round.
        waiting_for: Chargers whose answer this round is still due.
        proposals: Proposals received this round.
        accepted: The proposal accepted, awaiting confirmation.
        booking: The confirmed booking ``Confirm``; None without one.
        departed: Whether the vehicle left for its booked slot.
        retry_pending: A round found no proposal; the next starts after ``RETRY_MIN``.
    """

    vehicle_id: int
    request: int = 0
    round: int = 0
    free_at_min: float = 0.0
    waiting_for: set[str] = field(default_factory=set)
    proposals: list[Proposal] = field(default_factory=list)
    accepted: Proposal | None = None
    booking: Confirm | None = None
    departed: bool = False
    retry_pending: bool = False

    @property
    def busy(self) -> bool:
        """Negotiating, waiting to retry, or holding a booking."""
        return (
            bool(self.waiting_for)
            or self.accepted is not None
            or self.booking is not None
            or self.retry_pending
        )


class Negotiation(ChargingStrategy):
    """Charging slots negotiated between vehicles and chargers (see the module docstring)."""

    name = "negotiation"

    def __init__(
        self,
        model,
        ask_rule: Callable[[Vehicle], bool] | None = None,
        target_soc: Callable[[Vehicle], float] | None = None,
        held_until: Callable[[Vehicle], float | None] | None = None,
    ) -> None:
        """Set up the bus, one desk per charger and one negotiator per vehicle.

        Args:
            model: The factory model.
            ask_rule: When a vehicle asks for a slot (default: the threshold rule).
            target_soc: The state of charge a negotiated charge ends at (default:
                ``max_soc``). The ``intelligent`` strategy runs the protocol as its safety
                net with its own rule and a short charge.
            held_until: When a vehicle charging outside the protocol (on the twin
                controller's plan) leaves its port (see :class:`ChargerDesk`).
        """
        super().__init__(model)
        self.ask_rule = ask_rule
        self.target_soc = target_soc
        self.bus = MessageBus(model, model.config.message_latency_s / 60.0)
        ids = count(1)
        self.desks = {
            cid: ChargerDesk(c, self.bus, model.tariff.price, lambda: next(ids), held_until)
            for cid, c in model.chargers.items()
        }
        self.job_min, self.work_kw = job_profile(model)
        self.agents = {v.unique_id: VehicleNegotiator(v.unique_id) for v in model.vehicles}
        for vid in self.agents:
            self.bus.register(f"vehicle:{vid}", self.receive)

    # ----------------------------------------------------------------- the vehicle's rule
    def margin_min(self, vehicle) -> float:
        """Minutes of work left before ``min_soc`` at the type's mean working power."""
        b = vehicle.battery
        kw = max(self.work_kw.get(vehicle.vtype.name, 0.0), 1e-6)
        return max(0.0, (b.soc - b.min_soc) * b.capacity_kwh) / kw * 60.0

    def _wants(self, vehicle) -> bool:
        if self.ask_rule is not None:
            return self.ask_rule(vehicle)
        return vehicle.battery.soc < self.threshold and vehicle.battery.may_start_charging(
            self.threshold
        )

    def _target(self, vehicle) -> float:
        b = vehicle.battery
        if self.target_soc is None:
            return b.max_soc
        return min(max(self.target_soc(vehicle), b.min_soc), b.max_soc)

    def _depart_min(self, vehicle, booking: Confirm) -> float:
        charger = self.model.chargers[booking.charger_id]
        return booking.start_min - vehicle.travel_minutes(vehicle.position, charger.position)

    def _settle(self, vehicle) -> None:
        """A vehicle back from its slot (free again) gives the booking back."""
        agent = self.agents[vehicle.unique_id]
        if agent.booking is not None and agent.departed and vehicle.state in FREE_STATES:
            self._drop_booking(vehicle, "charged")

    def needs_charge(self, vehicle) -> bool:
        """A free vehicle below the threshold asks; one that asked takes no new job."""
        agent = self.agents[vehicle.unique_id]
        self._settle(vehicle)
        if not agent.busy and self._wants(vehicle):
            self._ask(vehicle)
        return agent.busy

    def request(self, vehicle) -> None:
        """Leave for the booked slot when due; otherwise wait at the parking place."""
        agent = self.agents[vehicle.unique_id]
        self._settle(vehicle)
        booking = agent.booking
        if booking is not None and self.model.chargers[booking.charger_id].failed:
            self._drop_booking(vehicle, "charger_failure")
            booking = None
        if not agent.busy:
            self._ask(vehicle)
        if booking is not None and self.model.time >= self._depart_min(vehicle, booking):
            self._go(vehicle)
        else:
            vehicle.wait_for_charger()

    # ----------------------------------------------------------------- protocol steps
    def _ask(self, vehicle) -> None:
        """Start a new round: a call for proposals to every charger."""
        agent = self.agents[vehicle.unique_id]
        agent.retry_pending = False
        agent.round += 1
        if agent.round == 1:
            agent.request += 1
        now = self.model.time
        free = vehicle.state in FREE_STATES or vehicle.state is VehicleState.QUEUED
        agent.free_at_min = now if free else now + self.job_min
        agent.proposals = []
        agent.accepted = None
        agent.waiting_for = set(self.desks)
        b = vehicle.battery
        target = self._target(vehicle)
        for desk in self.desks.values():
            port_kw = min(desk.charger.power_kw, vehicle.vtype.max_charge_power_kw)
            self.bus.send(
                CallForProposals(
                    **self._envelope(vehicle.unique_id, desk.address),
                    free_at_min=agent.free_at_min,
                    position=vehicle.position,
                    duration_min=max(1, charge_minutes(vehicle.vtype, b.soc, target, port_kw)),
                    energy_kwh=max(0.0, (target - b.soc) * b.capacity_kwh),
                    soc=b.soc,
                    margin_min=self.margin_min(vehicle),
                )
            )

    def receive(self, msg: Message) -> None:
        """A message for a vehicle arrives."""
        vehicle = self.model.vehicle_by_id[msg.vehicle_id]
        agent = self.agents[msg.vehicle_id]
        if isinstance(msg, Cancel):
            if agent.booking is not None and agent.booking.booking_id == msg.booking_id:
                self._lost_booking(vehicle)
            return
        if msg.request != agent.request or msg.round != agent.round or agent.round == 0:
            if isinstance(msg, Confirm):  # booked for an abandoned round: give it back
                self._release(vehicle.unique_id, msg, "abandoned")
            return  # an answer to an old round
        if isinstance(msg, Proposal | Refuse):
            agent.waiting_for.discard(msg.charger_id)
            if isinstance(msg, Proposal):
                agent.proposals.append(msg)
            if not agent.waiting_for:
                self._choose(vehicle)
        elif isinstance(msg, Confirm):
            agent.accepted = None
            agent.booking = msg
            agent.departed = False
            depart = max(self.model.time, self._depart_min(vehicle, msg))
            self.bus.scheduler.call(lambda: self._depart(vehicle, msg), at=depart)
        elif isinstance(msg, Reject):
            agent.accepted = None
            self._ask(vehicle)

    def _choose(self, vehicle) -> None:
        """Accept the proposal of highest utility, or retry later if there is none."""
        agent = self.agents[vehicle.unique_id]
        if not agent.proposals:
            agent.retry_pending = True
            self.bus.scheduler.call(lambda: self._retry(vehicle), after=RETRY_MIN)
            return
        # ties: the earlier slot, then the charger listed first
        best = min(
            agent.proposals,
            key=lambda p: (-utility(p, agent.free_at_min), p.start_min, p.charger_id),
        )
        agent.accepted = best
        self.bus.send(
            Accept(
                **self._envelope(vehicle.unique_id, f"charger:{best.charger_id}"),
                charger_id=best.charger_id,
                port=best.port,
                start_min=best.start_min,
                end_min=best.end_min,
                margin_min=self.margin_min(vehicle),
                displaces=best.displaces,
            )
        )

    def _retry(self, vehicle) -> None:
        agent = self.agents[vehicle.unique_id]
        agent.retry_pending = False
        agent.round = 0
        waiting = vehicle.state is VehicleState.QUEUED and not agent.departed
        if not agent.busy and (self._wants(vehicle) or waiting):
            self._ask(vehicle)

    def _depart(self, vehicle, booking: Confirm) -> None:
        """The booked slot is one travel time away: leave if free (else when free)."""
        agent = self.agents[vehicle.unique_id]
        if agent.booking is not booking or agent.departed:
            return
        waiting = vehicle.state is VehicleState.QUEUED and vehicle.target_charger is None
        if vehicle.state in FREE_STATES or waiting:
            self._go(vehicle)

    def _go(self, vehicle) -> None:
        """Leave for the booked slot (if the charger still holds it; else ask again)."""
        agent = self.agents[vehicle.unique_id]
        booking = agent.booking
        if self.desks[booking.charger_id].book.bookings[booking.booking_id].status != "booked":
            self._lost_booking(vehicle)  # cancelled meanwhile: its Cancel is on the way
            vehicle.wait_for_charger()
            return
        if vehicle.soc >= self._target(vehicle) - 1e-9:  # charged meanwhile (intelligent's plan)
            self._drop_booking(vehicle, "charged")
            if vehicle.state is VehicleState.QUEUED:
                self.commands.release(vehicle.unique_id)  # back to work
            return
        charger = self.model.chargers[booking.charger_id]
        p = booking.port
        free = (
            charger.occupant[p] is None
            and charger.reserved[p] is None
            and charger.ready_at[p] <= self.model.time
        )
        agent.departed = True
        self.desks[booking.charger_id].book.bookings[booking.booking_id].status = "departed"
        self.commands.charge(
            vehicle.unique_id, charger.charger_id, self._target(vehicle), port=p if free else None
        )

    def _drop_booking(self, vehicle, reason: str) -> None:
        """Give the booking back to its charger."""
        agent = self.agents[vehicle.unique_id]
        booking = agent.booking
        agent.booking = None
        agent.departed = False
        agent.round = 0
        self._release(vehicle.unique_id, booking, reason, request=agent.request, round=0)

    def _envelope(self, vehicle_id: int, receiver: str) -> dict:
        """Sender, receiver, and the vehicle's current request and round."""
        agent = self.agents[vehicle_id]
        return {
            "sender": f"vehicle:{vehicle_id}",
            "receiver": receiver,
            "vehicle_id": vehicle_id,
            "request": agent.request,
            "round": agent.round,
        }

    def _release(
        self,
        vehicle_id: int,
        booking: Confirm,
        reason: str,
        request: int | None = None,
        round: int | None = None,  # noqa: A002 (the message field's name)
    ) -> None:
        """Send the ``Release`` of a confirmed booking (request and round: the booking's)."""
        self.bus.send(
            Release(
                sender=f"vehicle:{vehicle_id}",
                receiver=f"charger:{booking.charger_id}",
                vehicle_id=vehicle_id,
                request=booking.request if request is None else request,
                round=booking.round if round is None else round,
                booking_id=booking.booking_id,
                reason=reason,
            )
        )

    def _lost_booking(self, vehicle) -> None:
        """The charger cancelled the booking: ask again (a queued vehicle keeps waiting)."""
        agent = self.agents[vehicle.unique_id]
        agent.booking = None
        agent.departed = False
        agent.round = 0
        if vehicle.state is not VehicleState.CHARGING and (
            self._wants(vehicle) or vehicle.state is VehicleState.QUEUED
        ):
            self._ask(vehicle)

    # ----------------------------------------------------------------- every minute
    def on_step(self, t: int) -> None:
        """Ask for vehicles below the threshold; give back slots of charged vehicles."""
        now = self.model.time
        for vehicle in self.model.vehicles:
            agent = self.agents[vehicle.unique_id]
            booking = agent.booking
            charging = vehicle.state is VehicleState.CHARGING
            if booking is not None:
                b = self.desks[booking.charger_id].book.bookings[booking.booking_id]
                if charging and b.status == "departed":
                    b.status = "active"
                self._settle(vehicle)
            elif not agent.busy and vehicle.task_id is not None and self._wants(vehicle):
                self._ask(vehicle)  # a working vehicle asks ahead; free ones in needs_charge
        for desk in self.desks.values():
            for b in desk.tick(now):
                vehicle = self.model.vehicle_by_id[b.vehicle_id]
                agent = self.agents[b.vehicle_id]
                mine = agent.booking is not None and agent.booking.booking_id == b.booking_id
                if mine and vehicle.state is VehicleState.CHARGING:
                    if not vehicle.battery.lead_acid:
                        self._drop_booking(vehicle, "slot_end")
                        self.commands.release(vehicle.unique_id)

    def charger_failed(self, charger) -> None:
        """Cancel the failed charger's bookings (its vehicles have already asked again)."""
        self.desks[charger.charger_id].charger_failed()

    def give_back(self, vehicle, reason: str) -> None:
        """Give a confirmed booking back to its charger (the vehicle charges elsewhere)."""
        if self.agents[vehicle.unique_id].booking is not None:
            self._drop_booking(vehicle, reason)

    def holds_booking(self, vehicle) -> bool:
        """Whether the vehicle negotiates or holds a negotiated booking."""
        return self.agents[vehicle.unique_id].busy

    def override(self, vehicle) -> bool:
        """The twin controller takes over the vehicle's charging.

        A booking the vehicle has not yet left for is given back (reason ``override``); a
        negotiation under way is abandoned. Returns whether either happened.
        """
        agent = self.agents[vehicle.unique_id]
        if agent.departed:
            return False
        if agent.booking is not None:
            self._drop_booking(vehicle, "override")
            return True
        if agent.waiting_for or agent.accepted is not None or agent.retry_pending:
            # abandon the round: late answers no longer match, a late confirm is given back
            agent.waiting_for = set()
            agent.accepted = None
            agent.proposals = []
            agent.retry_pending = False
            agent.round = 0
            return True
        return False

    @property
    def messages(self) -> list[dict]:
        """Every message sent so far (``messages.jsonl``)."""
        return self.bus.log
