"""agentev.tariff: hourly prices per minute, demand charges on clock-aligned 15-minute means."""

from __future__ import annotations

import numpy as np
import pytest

from agentev.config import DemandCharge, SiteConfig, TariffConfig
from agentev.site import water_fill
from agentev.tariff import DAYS_PER_MONTH, Tariff, demand_charge, quarter_hour_means

HOURLY = tuple(float(h) for h in range(24))  # price / base load = hour of the day


def tariff(*charges: DemandCharge) -> TariffConfig:
    return TariffConfig("test", "hand-made", "USD", HOURLY, tuple(charges))


ALL_DAY = DemandCharge("all day", 30.0)
AFTERNOON = DemandCharge("afternoon", 10.0, start_h=12.0, end_h=18.0)


def test_days_per_month_is_a_twelfth_of_a_julian_year():
    assert DAYS_PER_MONTH == 365.25 / 12


# --------------------------------------------------------------------------- prices
@pytest.mark.parametrize(
    ("step", "hour"), [(1, 0), (60, 0), (61, 1), (720, 11), (721, 12), (1440, 23), (1441, 0)]
)
def test_minute_ending_at_step_is_priced_at_the_hour_it_lies_in(step, hour):
    t = Tariff(tariff(), SiteConfig(base_load_kw=HOURLY))
    assert t.price(step) == hour
    assert t.base_load_kw(step) == hour


def test_charging_headroom_is_limit_minus_base_load_and_never_negative():
    t = Tariff(tariff(), SiteConfig(base_load_kw=HOURLY, grid_limit_kw=10.0))
    assert t.charging_headroom_kw(1) == 10.0
    assert t.charging_headroom_kw(4 * 60) == 7.0
    assert t.charging_headroom_kw(23 * 60) == 0.0
    assert Tariff(tariff(), SiteConfig(base_load_kw=HOURLY)).charging_headroom_kw(5) == np.inf


# --------------------------------------------------------------------------- 15-minute means
def test_quarter_hour_means_are_clock_aligned_with_a_partial_last_block():
    power = np.array([10.0] * 15 + [40.0] * 15 + [7.0] * 5)
    assert quarter_hour_means(power).tolist() == [10.0, 40.0, 7.0]


def test_demand_peak_is_the_highest_clock_aligned_mean_not_a_rolling_maximum():
    power = np.full(60, 100.0)
    power[10:25] = 200.0  # a 15-minute spike straddling two quarter hours
    charge, peak = demand_charge(tariff(ALL_DAY), power)
    assert peak == pytest.approx((10 * 200 + 5 * 100) / 15)  # second block, not 200
    assert charge == pytest.approx(30.0 * peak * (60 / 1440) / DAYS_PER_MONTH)


def test_demand_charge_is_pro_rated_by_days_over_a_month():
    power = np.full(2 * 1440, 50.0)
    power[100] = 50.0 + 15 * 20.0  # one minute lifts its quarter hour's mean by 20 kW
    charge, peak = demand_charge(tariff(ALL_DAY), power)
    assert peak == pytest.approx(70.0)
    assert charge == pytest.approx(30.0 * 70.0 * 2.0 / (365.25 / 12))


def test_windowed_demand_charge_looks_only_at_quarter_hours_within_its_hours():
    power = np.full(1440, 100.0)
    power[3 * 60 : 3 * 60 + 15] = 400.0  # night peak, outside the window
    power[13 * 60 : 13 * 60 + 15] = 250.0  # afternoon peak
    power[18 * 60 : 18 * 60 + 15] = 300.0  # 18:00 is the window's (exclusive) end
    power[12 * 60 - 15 : 12 * 60] = 350.0  # 11:45-12:00, just before the window
    charge, peak = demand_charge(tariff(ALL_DAY, AFTERNOON), power)
    assert peak == 400.0
    day = 1.0 / DAYS_PER_MONTH
    assert charge == pytest.approx(30.0 * 400.0 * day + 10.0 * 250.0 * day)
    only_window, _ = demand_charge(tariff(AFTERNOON), power)
    assert only_window == pytest.approx(10.0 * 250.0 * day)


def test_windowed_demand_charge_is_zero_when_the_run_never_reaches_its_hours():
    charge, peak = demand_charge(tariff(AFTERNOON), np.full(120, 80.0))
    assert charge == 0.0
    assert peak == 80.0


def test_windows_repeat_every_day():
    power = np.full(2 * 1440, 100.0)
    power[1440 + 14 * 60 : 1440 + 14 * 60 + 15] = 160.0  # day two, 14:00
    charge, _ = demand_charge(tariff(AFTERNOON), power)
    assert charge == pytest.approx(10.0 * 160.0 * 2.0 / DAYS_PER_MONTH)


def test_demand_charge_of_an_empty_series_is_zero():
    assert demand_charge(tariff(ALL_DAY), np.array([])) == (0.0, 0.0)


# --------------------------------------------------------------------------- power sharing
@pytest.mark.parametrize(
    ("requests", "capacity", "expected"),
    [
        ([1.0, 2.0], 5.0, [1.0, 2.0]),
        ([3.3, 3.3, 3.3], 6.0, [2.0, 2.0, 2.0]),
        ([0.5, 3.3, 3.3], 4.5, [0.5, 2.0, 2.0]),
        ([3.3, 3.3], 0.0, [0.0, 0.0]),
    ],
)
def test_water_fill_gives_equal_shares_never_more_than_asked(requests, capacity, expected):
    assert water_fill(requests, capacity) == pytest.approx(expected)
    assert sum(water_fill(requests, capacity)) <= capacity + 1e-12
