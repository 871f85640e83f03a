"""The twin's synchronised picture of the fleet, built from state messages alone.

Per vehicle the mirror keeps the last report it accepted and estimates the state of charge
between reports by integrating the power the vehicle is expected to draw:

* plugged in: the CC-CV envelope of its battery (``Battery.power_limit_kw``) at the port's
  power, times the charging efficiency, stopping at the charge target the twin sent;
* otherwise its consumption by activity: driving loaded or empty, handling a load (busy and
  standing), or standing idle (the vehicle type's powers, kW).

Each new report corrects the estimate; the difference between the estimate and the reported
value just before the correction is the **SoC error** (the estimator's innovation). A report
whose charging flag the twin did not predict (from the previous report, its own commands and
the charge target it expects) is a **state mismatch**. Both are the twin's divergence from
the plant, measured only from what the twin receives: a change of the charging flag that the
twin did not command (a vehicle's own charge below its threshold, a charge ending early) or a
command not carried out counts once, in the first report that shows it.

Reports are applied in header order per vehicle: a report with a header id at or below the
last accepted one is a duplicate or out of order and is ignored. A vehicle whose last report
is older than ``stale_after_min`` of the twin's clock is **stale**: its estimate goes on, but
the twin sends it no new charging command.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from agentev.agents.controller import ChargerView, TwinState, VehicleView, window_peaks
from agentev.battery import Battery
from agentev.twin.messages import START_CHARGING, VehicleReport, serial_number

if TYPE_CHECKING:
    from agentev.config import VehicleType
    from agentev.model import FactoryModel


@dataclass
class VehicleMirror:
    """What the twin knows of one vehicle."""

    vehicle_id: int
    serial: str
    vtype: VehicleType
    port_kw: float
    report: VehicleReport | None = None
    #: Charge target the twin sent with its last start (fraction), or None.
    target_soc: float | None = None
    #: The twin's last command to this vehicle, ``(kind, time_min)``.
    last_command: tuple[str, float] | None = None
    #: A start sent and not yet reported plugged in, failed or finished (action id).
    pending_start: str | None = None
    #: A stop sent: by this time (minutes) the vehicle must report it is not charging.
    stop_due_min: float | None = None
    estimate_soc: float = math.nan
    estimate_min: float = 0.0
    stale: bool = False
    #: The vehicle type's battery, for its CC-CV envelope only (built once).
    envelope: Battery = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.envelope = Battery(self.vtype, self.vtype.max_soc)

    def grid_kw(self, soc: float) -> float:
        """Expected grid-side charging power at ``soc`` (kW): the envelope at the port."""
        return min(self.envelope.power_limit_kw(soc), self.port_kw)

    def power_kw(self, soc: float, charging: bool) -> float:
        """Expected net battery power (kW, positive while charging) at ``soc``."""
        vt = self.vtype
        if charging:
            top = vt.max_soc if self.target_soc is None else min(self.target_soc, vt.max_soc)
            if soc >= top:
                return -vt.idle_kw
            return self.grid_kw(soc) * vt.charging_efficiency
        r = self.report
        if r is not None and r.driving:
            return -(vt.drive_loaded_kw if r.loaded else vt.drive_empty_kw)
        if r is not None and r.busy:
            return -vt.handling_kw
        return -vt.idle_kw

    def mismatch(self, report: VehicleReport) -> bool:
        """Whether ``report``'s charging flag is one the twin did not predict.

        A stop must show by ``stop_due_min`` (a report before it may show either flag);
        otherwise the twin predicts the last report's flag, ending at the charge target.
        """
        if self.stop_due_min is not None:
            if not report.charging:
                self.stop_due_min = None
                return False
            if report.time_min < self.stop_due_min:
                return False
            self.stop_due_min = None
            return True
        return report.charging != self.expects_charging()

    def expects_charging(self) -> bool:
        """The charging flag the twin predicts for the next report, at its estimate now."""
        r = self.report
        charging = r.charging if r is not None else False
        if charging:
            top = self.vtype.max_soc if self.target_soc is None else self.target_soc
            if self.estimate_soc >= top - 1e-9:
                charging = False
        return charging

    def predict(self, now_min: float) -> float:
        """Advance the SoC estimate to ``now_min`` (minutes) and return it (fraction)."""
        if self.report is None or now_min <= self.estimate_min:
            return self.estimate_soc
        soc = self.estimate_soc
        charging = self.report.charging
        t = self.estimate_min
        while t < now_min - 1e-12:
            dt = min(1.0, now_min - t)
            soc += self.power_kw(soc, charging) * dt / 60.0 / self.vtype.capacity_kwh
            if charging:
                top = self.vtype.max_soc if self.target_soc is None else self.target_soc
                soc = min(soc, max(top, self.estimate_soc))
            soc = min(max(soc, 0.0), self.vtype.max_soc)
            t += dt
        self.estimate_soc, self.estimate_min = soc, now_min
        return soc


@dataclass
class MirrorCounters:
    """How many reports the mirror took and why it left the others."""

    applied: int = 0
    duplicates: int = 0
    out_of_order: int = 0
    unknown_vehicle: int = 0
    soc_errors: list[float] = field(default_factory=list)
    mismatches: int = 0
    failed_actions: int = 0


class FleetMirror:
    """The synchronised state of every vehicle of a scenario's fleet.

    Args:
        model: A model of the same scenario as the plant: the twin's static knowledge of the
            fleet (vehicle ids, types), chargers, layout and tariff. It is never stepped.
        stale_after_min: Age of a vehicle's last report beyond which it is stale (minutes).
        mismatch_grace_min: Time a vehicle has to carry out a stop before a report that
            still shows it charging counts as a mismatch (minutes).
    """

    def __init__(
        self, model: FactoryModel, stale_after_min: float = 3.0, mismatch_grace_min: float = 2.0
    ) -> None:
        if not (stale_after_min > 0.0 and math.isfinite(stale_after_min)):
            raise ValueError(f"stale_after_min = {stale_after_min!r}: allowed: a number > 0")
        self.model = model
        self.stale_after_min = stale_after_min
        self.mismatch_grace_min = mismatch_grace_min
        port_kw = min(c.power_kw for c in model.chargers.values())
        self.vehicles: dict[str, VehicleMirror] = {}
        for v in model.vehicles:
            serial = serial_number(v.vtype.name, v.unique_id)
            self.vehicles[serial] = VehicleMirror(
                v.unique_id, serial, v.vtype, min(port_kw, v.vtype.max_charge_power_kw)
            )
        self.vehicles_by_id = {m.vehicle_id: m for m in self.vehicles.values()}
        self.counters = MirrorCounters()
        self.now_min = 0.0
        #: Estimated site power per minute so far (kW): base load plus charging vehicles.
        self.site_kw: list[float] = []

    def apply(self, report: VehicleReport) -> str:
        """Take a report: ``applied``, ``duplicate``, ``out_of_order`` or ``unknown_vehicle``.

        Nothing of a report that is not applied changes the mirror.
        """
        c = self.counters
        mirror = self.vehicles.get(report.serial)
        if mirror is None:
            c.unknown_vehicle += 1
            return "unknown_vehicle"
        last = mirror.report
        if last is not None:
            if report.header_id == last.header_id:
                c.duplicates += 1
                return "duplicate"
            if report.header_id < last.header_id or report.time_min < last.time_min:
                c.out_of_order += 1
                return "out_of_order"
            predicted = mirror.predict(report.time_min)
            c.soc_errors.append(abs(predicted - report.soc))
            if mirror.mismatch(report):
                c.mismatches += 1
        known = {a.action_id for a in last.actions} if last is not None else set()
        for action in report.actions:
            if action.status == "FAILED" and action.action_id not in known:
                c.failed_actions += 1
            if action.action_id == mirror.pending_start and (
                action.status in ("RUNNING", "FINISHED", "FAILED")
            ):
                mirror.pending_start = None
        if not report.charging and (last is None or last.charging):
            if mirror.pending_start is None:  # the charge is over: its target with it
                mirror.target_soc = None
        mirror.report = report
        mirror.estimate_soc, mirror.estimate_min = report.soc, report.time_min
        mirror.stale = False
        c.applied += 1
        return "applied"

    def command_sent(
        self,
        serial: str,
        kind: str,
        action_id: str,
        time_min: float,
        target_soc: float | None = None,
    ) -> None:
        """Note a command the twin sent (its expectations follow it)."""
        mirror = self.vehicles[serial]
        mirror.last_command = (kind, time_min)
        if kind == START_CHARGING:
            mirror.pending_start = action_id
            mirror.target_soc = target_soc
        else:
            mirror.pending_start = None
            mirror.stop_due_min = time_min + self.mismatch_grace_min

    def advance(self, now_min: float) -> None:
        """Move the twin's clock to ``now_min``: estimates, staleness, site power per minute."""
        tariff = self.model.tariff
        while len(self.site_kw) < int(math.floor(now_min + 1e-9)):
            minute = len(self.site_kw) + 1
            charging_kw = sum(
                m.grid_kw(m.predict(minute))
                for m in self.vehicles.values()
                if m.report is not None and m.report.charging
            )
            self.site_kw.append(tariff.base_load_kw(minute) + charging_kw)
        self.now_min = max(self.now_min, now_min)
        for m in self.vehicles.values():
            m.predict(self.now_min)
            last = m.report.time_min if m.report is not None else 0.0
            m.stale = self.now_min - last > self.stale_after_min

    def demand_peaks_kw(self) -> tuple[float, ...]:
        """Highest estimated 15-minute mean site power in each demand charge's window (kW)."""
        return window_peaks(self.site_kw, self.model.config.tariff.demand_charges)

    def twin_state(self) -> TwinState:
        """The controller's snapshot of the mirrored fleet at the twin's clock."""
        views = []
        at_charger: dict[str, list[int]] = {cid: [] for cid in self.model.chargers}
        for m in self.vehicles.values():
            r = m.report
            soc = m.predict(self.now_min) if r is not None else m.vtype.max_soc
            task_id = None
            if r is not None and r.busy:
                digits = r.order_id.rsplit("-", 1)[-1]
                task_id = int(digits) if digits.isdigit() else -1
            if r is not None and r.charging:
                state = "charging"
                if r.node_id in at_charger:
                    at_charger[r.node_id].append(m.vehicle_id)
            elif task_id is not None:
                state = "to_dropoff" if r.loaded else "to_pickup"
            elif r is not None and r.driving:
                state = "to_park"
            else:
                state = "idle"
            cell = (
                self.model.layout.parking[0]
                if r is None
                else (
                    int(round(r.x_m / self.model.layout.cell_size_m)),
                    int(round(r.y_m / self.model.layout.cell_size_m)),
                )
            )
            views.append(
                VehicleView(
                    m.vehicle_id,
                    m.vtype.name,
                    float(soc),
                    m.vtype.capacity_kwh,
                    state,
                    cell,
                    task_id,
                    r.node_id if r is not None and r.charging else None,
                )
            )
        chargers = []
        for cid, charger in self.model.chargers.items():
            held = at_charger[cid][: charger.num_ports]
            ports = tuple(held) + (None,) * (charger.num_ports - len(held))
            chargers.append(
                ChargerView(cid, charger.position, ports, (None,) * charger.num_ports, (), False)
            )
        return TwinState(
            self.now_min,
            tuple(sorted(views, key=lambda v: v.vehicle_id)),
            tuple(chargers),
            0,
            self.demand_peaks_kw(),
        )
