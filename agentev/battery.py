"""Traction battery: state of charge, CC-CV charging envelope, chemistry rules, exact bookkeeping.

The battery is integrated exactly over segments of constant power. While a vehicle is in one
activity (driving, handling, standing) its consumption power is constant, and while it is
plugged in its grid-side charging power is held constant over each minute (set at the start
of the minute, or at plug-in, from the CC-CV envelope at that state of charge). Between two
events the energy change is therefore ``power x duration`` with no discretisation error, and:

    charged_kwh = grid_kwh * charging_efficiency
    delta_energy_kwh = charged_kwh - consumed_kwh

hold for every segment. The state of charge is clamped to ``[0, max_soc]`` by reducing the
charged (or consumed) energy of the last segment, so the identities stay exact.
"""

from __future__ import annotations

from agentev.config import VehicleType


class Battery:
    """A battery with exact energy bookkeeping.

    Args:
        vtype: The vehicle type giving capacity, efficiency, SoC limits and charging curve.
        soc: Initial state of charge (fraction).
    """

    __slots__ = (
        "capacity_kwh",
        "efficiency",
        "min_soc",
        "max_soc",
        "knee_soc",
        "max_power_kw",
        "floor_power_kw",
        "lead_acid",
        "energy_kwh",
        "charged_total_kwh",
    )

    def __init__(self, vtype: VehicleType, soc: float) -> None:
        self.capacity_kwh = vtype.capacity_kwh
        self.efficiency = vtype.charging_efficiency
        self.min_soc = vtype.min_soc
        self.max_soc = vtype.max_soc
        self.knee_soc = vtype.cccv_knee_soc
        self.max_power_kw = vtype.max_charge_power_kw
        self.floor_power_kw = vtype.max_charge_power_kw * vtype.cccv_floor_fraction
        self.lead_acid = vtype.chemistry == "lead-acid"
        self.energy_kwh = soc * vtype.capacity_kwh
        self.charged_total_kwh = 0.0

    @property
    def soc(self) -> float:
        """State of charge (fraction of capacity)."""
        return self.energy_kwh / self.capacity_kwh

    def power_limit_kw(self, soc: float | None = None) -> float:
        """Maximum grid-side charging power at a state of charge (kW), the CC-CV envelope.

        Constant power up to the knee, then a linear taper to the floor power at full charge.
        """
        s = self.soc if soc is None else soc
        if s <= self.knee_soc or self.knee_soc >= 1.0:
            return self.max_power_kw
        frac = min(1.0, (s - self.knee_soc) / (1.0 - self.knee_soc))
        return self.max_power_kw + frac * (self.floor_power_kw - self.max_power_kw)

    def may_start_charging(self, threshold: float) -> bool:
        """Chemistry rule: lead-acid starts a charge only below its threshold; Li-ion any time."""
        if self.lead_acid:
            return self.soc < threshold
        return self.soc < self.max_soc

    def integrate(self, grid_kw: float, consume_kw: float, minutes: float) -> tuple[float, ...]:
        """Advance the battery by ``minutes`` at constant powers.

        Args:
            grid_kw: Grid-side charging power (kW).
            consume_kw: Consumption power (kW).
            minutes: Duration (minutes), >= 0.

        Returns:
            ``(grid_kwh, charged_kwh, consumed_kwh)`` for the segment, after clamping.
        """
        hours = minutes / 60.0
        grid = grid_kw * hours
        charged = grid * self.efficiency
        consumed = consume_kw * hours
        energy = self.energy_kwh + charged - consumed
        top = self.max_soc * self.capacity_kwh
        if energy > top and charged > 0.0:
            charged = max(0.0, charged - (energy - top))
            grid = charged / self.efficiency
            # Land on the limit exactly (recomputing the sum may overshoot it by a rounding).
            energy = top if charged > 0.0 else self.energy_kwh - consumed
        if energy < 0.0:
            consumed = self.energy_kwh + charged
            energy = 0.0
        self.energy_kwh = energy
        self.charged_total_kwh += charged
        return grid, charged, consumed

    def minutes_to_reach(self, target_soc: float, grid_kw: float, consume_kw: float) -> float:
        """Minutes until the SoC reaches ``target_soc`` at constant powers (inf if never)."""
        net_kw = grid_kw * self.efficiency - consume_kw
        gap = target_soc * self.capacity_kwh - self.energy_kwh
        if gap <= 0.0:
            return 0.0
        if net_kw <= 0.0:
            return float("inf")
        return gap / net_kw * 60.0


def period_charge_curve(
    vtype: VehicleType, period_min: float, max_power_kw: float | None = None, points: int = 41
) -> tuple[list[float], list[float]]:
    """Energy a battery takes in one period, as a function of its energy at the start.

    The charge is simulated exactly as the model charges: the grid-side power is set each
    minute from the CC-CV envelope at that minute's state of charge (capped by
    ``max_power_kw``) and held for the minute; standby consumption is left out.

    Args:
        vtype: The vehicle type.
        period_min: Period length (minutes).
        max_power_kw: Port power cap (kW); None = the vehicle's maximum.
        points: Number of start energies sampled between 0 and ``max_soc x capacity``.

    Returns:
        ``(start_energy_kwh, charged_kwh)`` sample lists.
    """
    cap = max_power_kw if max_power_kw is not None else vtype.max_charge_power_kw
    starts, charged = [], []
    top = vtype.max_soc * vtype.capacity_kwh
    for i in range(points):
        battery = Battery(vtype, vtype.max_soc * i / (points - 1))
        start = battery.energy_kwh
        left = period_min
        while left > 1e-12 and battery.energy_kwh < top:
            minutes = min(1.0, left)
            battery.integrate(min(cap, battery.power_limit_kw()), 0.0, minutes)
            left -= minutes
        starts.append(start)
        charged.append(battery.energy_kwh - start)
    return starts, charged


def charge_minutes(vtype: VehicleType, soc: float, target_soc: float, port_kw: float) -> int:
    """Whole minutes a charge from ``soc`` to ``target_soc`` takes on a port of ``port_kw``.

    Charged as the model charges (the grid-side power set each minute from the CC-CV
    envelope, capped by the port), standby consumption left out; at most a day.
    """
    battery = Battery(vtype, min(max(soc, 0.0), vtype.max_soc))
    top = min(target_soc, vtype.max_soc) * vtype.capacity_kwh - 1e-9
    minutes = 0
    while battery.energy_kwh < top and minutes < 1440:
        battery.integrate(min(port_kw, battery.power_limit_kw()), 0.0, 1.0)
        minutes += 1
    return minutes


def concave_cuts(xs: list[float], ys: list[float]) -> list[tuple[float, float]]:
    """Lines ``y <= a + b x`` whose minimum is the upper concave hull of the points.

    Args:
        xs: Increasing sample positions.
        ys: Sampled values.

    Returns:
        ``(a, b)`` pairs, one per hull segment.
    """
    hull: list[tuple[float, float]] = []
    for p in zip(xs, ys, strict=True):
        while len(hull) >= 2:
            (x1, y1), (x2, y2) = hull[-2], hull[-1]
            # drop the middle point if it lies on or below the chord (not concave)
            if (x2 - x1) * (p[1] - y1) - (y2 - y1) * (p[0] - x1) >= -1e-9:
                hull.pop()
            else:
                break
        hull.append(p)
    cuts = []
    for (x1, y1), (x2, y2) in zip(hull, hull[1:], strict=False):
        b = (y2 - y1) / (x2 - x1)
        cuts.append((y1 - b * x1, b))
    return cuts
