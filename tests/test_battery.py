"""agentev.battery.Battery: CC-CV envelope, exact bookkeeping, clamping, chemistry rules."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentev.battery import Battery
from agentev.config import VehicleType

LI_ION = VehicleType(
    capacity_kwh=5.0,
    max_charge_power_kw=3.3,
    charging_efficiency=0.92,
    min_soc=0.2,
    max_soc=1.0,
    cccv_knee_soc=0.8,
    cccv_floor_fraction=0.1,
)
LEAD_ACID = VehicleType(chemistry="lead-acid", capacity_kwh=8.0, charging_efficiency=0.85)


def battery(soc: float = 0.5, **changes) -> Battery:
    vt = VehicleType(**{**LI_ION.__dict__, **changes})
    return Battery(vt, soc)


# --------------------------------------------------------------------------- CC-CV envelope
@pytest.mark.parametrize("soc", [0.0, 0.2, 0.5, 0.79, 0.8])
def test_cccv_power_is_constant_up_to_the_knee(soc):
    assert battery().power_limit_kw(soc) == 3.3


def test_cccv_power_tapers_linearly_from_the_knee_to_the_floor_at_full():
    b = battery()
    assert b.power_limit_kw(1.0) == pytest.approx(0.33, abs=1e-12)
    assert b.power_limit_kw(0.9) == pytest.approx((3.3 + 0.33) / 2, abs=1e-12)
    assert b.power_limit_kw(0.85) == pytest.approx(3.3 - 0.25 * (3.3 - 0.33), abs=1e-12)


def test_cccv_power_defaults_to_the_battery_soc():
    b = battery(soc=0.9)
    assert b.power_limit_kw() == b.power_limit_kw(0.9) < 3.3


def test_cccv_knee_at_full_charge_means_constant_power():
    assert battery(cccv_knee_soc=1.0).power_limit_kw(1.0) == 3.3


@settings(max_examples=300, deadline=None)
@given(
    knee=st.floats(0.0, 0.99, allow_subnormal=False),
    floor=st.floats(0.01, 1.0, allow_subnormal=False),
    max_kw=st.floats(0.1, 50.0, allow_subnormal=False),
    a=st.floats(0.0, 1.0, allow_subnormal=False),
    b=st.floats(0.0, 1.0, allow_subnormal=False),
)
def test_cccv_envelope_is_never_above_max_power_and_never_rises_with_soc(knee, floor, max_kw, a, b):
    bat = battery(cccv_knee_soc=knee, cccv_floor_fraction=floor, max_charge_power_kw=max_kw)
    lo, hi = min(a, b), max(a, b)
    p_lo, p_hi = bat.power_limit_kw(lo), bat.power_limit_kw(hi)
    assert p_hi <= p_lo + 1e-12
    assert max_kw * floor - 1e-12 <= p_hi <= max_kw
    assert p_lo <= max_kw
    if hi <= knee:
        assert p_hi == max_kw
    else:
        frac = (hi - knee) / (1.0 - knee)
        assert p_hi == pytest.approx(max_kw + frac * (max_kw * floor - max_kw), abs=1e-9)


# --------------------------------------------------------------------------- integrate()
@settings(max_examples=500, deadline=None)
@given(
    capacity=st.floats(0.5, 30.0, allow_subnormal=False),
    max_soc=st.floats(0.5, 1.0, allow_subnormal=False),
    eff=st.floats(0.5, 1.0, allow_subnormal=False),
    start=st.floats(0.0, 1.0, allow_subnormal=False),
    grid_kw=st.floats(0.0, 10.0, allow_subnormal=False),
    consume_kw=st.floats(0.0, 5.0, allow_subnormal=False),
    minutes=st.floats(0.0, 600.0, allow_subnormal=False),
)
def test_integrate_keeps_grid_times_efficiency_equal_to_charged_and_clamps_exactly(
    capacity, max_soc, eff, start, grid_kw, consume_kw, minutes
):
    b = battery(
        soc=start * max_soc, capacity_kwh=capacity, max_soc=max_soc, charging_efficiency=eff
    )
    before = b.energy_kwh
    top = max_soc * capacity
    unclamped = before + (grid_kw * eff - consume_kw) * minutes / 60.0
    grid, charged, consumed = b.integrate(grid_kw, consume_kw, minutes)

    assert grid >= 0.0 and charged >= 0.0 and consumed >= 0.0
    assert grid * eff == pytest.approx(charged, rel=1e-12, abs=1e-15)
    assert b.energy_kwh - before == pytest.approx(charged - consumed, rel=1e-12, abs=1e-12)
    assert 0.0 <= b.energy_kwh <= top
    assert grid <= grid_kw * minutes / 60.0 * (1 + 1e-12)
    assert consumed <= consume_kw * minutes / 60.0 * (1 + 1e-12)
    if unclamped > top * (1 + 1e-12) and grid_kw > 0:
        assert b.energy_kwh == top  # exactly at the limit
        assert b.soc == pytest.approx(max_soc, rel=1e-15)
    elif unclamped < -1e-12:
        assert b.energy_kwh == 0.0  # exactly empty
        assert b.soc == 0.0
        assert consumed == pytest.approx(before + charged, rel=1e-12)
    else:
        assert b.energy_kwh == pytest.approx(unclamped, rel=1e-12, abs=1e-12)
    assert b.charged_total_kwh == charged


def test_integrate_stops_charging_at_max_soc_exactly():
    b = battery(soc=0.99, max_soc=1.0)
    grid, charged, consumed = b.integrate(3.3, 0.08, 60.0)
    assert b.energy_kwh == 5.0 and b.soc == 1.0
    assert charged == pytest.approx(0.05 + 0.08, rel=1e-12)  # the gap plus what was used
    assert grid == pytest.approx(charged / 0.92, rel=1e-12)
    assert consumed == pytest.approx(0.08, rel=1e-12)


def test_integrate_stops_discharging_at_zero_exactly():
    b = battery(soc=0.01)
    grid, charged, consumed = b.integrate(0.0, 1.0, 60.0)
    assert b.energy_kwh == 0.0 and b.soc == 0.0
    assert (grid, charged) == (0.0, 0.0)
    assert consumed == pytest.approx(0.05, rel=1e-12)


def test_integrate_over_zero_minutes_changes_nothing():
    b = battery(soc=0.4)
    assert b.integrate(3.3, 1.0, 0.0) == (0.0, 0.0, 0.0)
    assert b.soc == 0.4


def test_integrate_accumulates_charged_energy():
    b = battery(soc=0.2)
    _, c1, _ = b.integrate(3.3, 0.0, 10.0)
    _, c2, _ = b.integrate(3.3, 0.0, 5.0)
    assert b.charged_total_kwh == pytest.approx(c1 + c2, rel=1e-15)
    assert c1 == pytest.approx(3.3 * 0.92 / 6, rel=1e-12)


@pytest.mark.parametrize(
    ("soc", "target", "grid_kw", "consume_kw", "expected"),
    [
        (0.5, 0.6, 3.0, 0.0, 0.5 / (3.0 * 0.92) * 60),
        (0.5, 0.6, 3.0, 0.76, 0.5 / (3.0 * 0.92 - 0.76) * 60),
        (0.6, 0.5, 3.0, 0.0, 0.0),
        (0.5, 0.6, 0.0, 0.1, math.inf),
    ],
)
def test_minutes_to_reach_a_target_soc(soc, target, grid_kw, consume_kw, expected):
    b = battery(soc=soc)
    minutes = b.minutes_to_reach(target, grid_kw, consume_kw)
    assert minutes == pytest.approx(expected, rel=1e-12)
    if math.isfinite(minutes) and minutes > 0:
        b.integrate(grid_kw, consume_kw, minutes)
        assert b.soc == pytest.approx(target, rel=1e-12)


# --------------------------------------------------------------------------- chemistry
@pytest.mark.parametrize(
    ("soc", "allowed"), [(0.1, True), (0.299, True), (0.3, False), (0.9, False)]
)
def test_lead_acid_may_start_charging_only_below_the_threshold(soc, allowed):
    assert Battery(LEAD_ACID, soc).lead_acid
    assert Battery(LEAD_ACID, soc).may_start_charging(0.3) is allowed


@pytest.mark.parametrize(("soc", "allowed"), [(0.1, True), (0.3, True), (0.9, True), (1.0, False)])
def test_li_ion_may_start_charging_whenever_below_max_soc(soc, allowed):
    b = Battery(LI_ION, soc)
    assert not b.lead_acid
    assert b.may_start_charging(0.3) is allowed
