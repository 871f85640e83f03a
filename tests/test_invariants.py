"""Run invariants, checked on the in-memory run log and on the files read back.

A property test draws seeds and scenario parameters; the named tests check each property on
a few shared longer runs (see conftest.py), where charging, queueing, tight grid limits,
lead-acid batteries and charger failures all occur.
"""

from __future__ import annotations

import dataclasses
import tempfile

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from agentev.scenario import available_scenarios, load_scenario
from tests.helpers import (
    BASELINES,
    assert_invariants,
    assert_metrics_recomputable,
    check_costs_and_site_power,
    check_energy_identities,
    check_failures,
    check_log_shape,
    check_plug_columns,
    check_ports_exclusive,
    check_soc_bounds,
    check_task_order,
    log_from_dir,
    log_from_model,
    read_summary,
    run_model,
)

SCENARIOS = {name: load_scenario(name) for name in ("light", "heavy", "flexible", "continuous")}


def test_all_four_scenarios_are_built_in():
    assert set(SCENARIOS) <= set(available_scenarios())


def _parking(cfg) -> int:
    return sum(row.count("P") for row in cfg.layout.rows)


def _with_failing_chargers(cfg, mtbf_h: float, mttr_h: float):
    chargers = tuple(
        dataclasses.replace(c, mtbf_h=mtbf_h, mttr_h=mttr_h) for c in cfg.layout.chargers
    )
    return dataclasses.replace(cfg, layout=dataclasses.replace(cfg.layout, chargers=chargers))


@st.composite
def run_settings(draw) -> dict:
    name = draw(st.sampled_from(sorted(SCENARIOS)))
    cfg = SCENARIOS[name]
    margin = draw(st.one_of(st.none(), st.floats(0.5, 15.0)))
    return {
        "scenario": name,
        # The planning strategies (intelligent, oracle) solve MILPs: they have their own
        # shared runs in conftest.py, checked by every invariant test through `any_run`.
        "strategy": draw(st.sampled_from(sorted(BASELINES))),
        "num_vehicles": draw(st.integers(1, _parking(cfg))),
        "num_chargers": draw(st.integers(1, len(cfg.layout.chargers))),
        "charge_threshold": draw(st.floats(0.25, 0.6)),
        # tight: a few kW above the highest base load of the day
        "grid_limit_kw": None if margin is None else max(cfg.site.base_load_kw) + margin,
        "duration_h": draw(st.integers(120, 480)) / 60.0,
        "mtbf_h": draw(st.sampled_from([0.0, 0.0, 1.0])),
        "rng": draw(st.integers(0, 2**32 - 1)),
    }


def _run_and_check(params: dict) -> None:
    params = dict(params)
    cfg = SCENARIOS[params.pop("scenario")]
    mtbf_h = params.pop("mtbf_h")
    if mtbf_h:
        cfg = _with_failing_chargers(cfg, mtbf_h, mttr_h=0.5)
    with tempfile.TemporaryDirectory() as out:
        model = run_model(out, scenario=cfg, **params)
        assert_invariants(out, model)


# Found by this test: a charger failing while vehicles drove to it raised CommandError.
@example(
    {
        "scenario": "continuous",
        "strategy": "uncontrolled",
        "num_vehicles": 5,
        "num_chargers": 3,
        "charge_threshold": 0.5665395215605156,
        "grid_limit_kw": None,
        "duration_h": 6.0,
        "mtbf_h": 1.0,
        "rng": 2888969234,
    }
)
@example(
    {
        "scenario": "flexible",
        "strategy": "fcfs",
        "num_vehicles": 5,
        "num_chargers": 5,
        "charge_threshold": 0.5897392652698936,
        "grid_limit_kw": 382.8368927201279,
        "duration_h": 7.566666666666666,
        "mtbf_h": 1.0,
        "rng": 243872514,
    }
)
@settings(max_examples=50, deadline=None)
@given(run_settings())
def test_every_run_keeps_all_invariants_in_memory_and_in_files(params):
    _run_and_check(params)


# --------------------------------------------------------------------------- shared runs
@pytest.fixture(scope="session", params=["memory", "files"])
def log(request, any_run):
    return log_from_model(any_run.model) if request.param == "memory" else log_from_dir(any_run.out)


def test_shared_runs_charge_and_work(any_run):
    """The shared runs are not vacuous: vehicles work, charge and sometimes queue."""
    metrics = read_summary(any_run.out)["metrics"]
    assert metrics["tasks_completed"]["value"] > 0
    assert metrics["charging_sessions"]["value"] > 0
    assert metrics["charged_energy_kwh"]["value"] > 0


def test_timeseries_has_one_row_per_vehicle_per_minute_plus_initial_rows(log):
    check_log_shape(log)


def test_charged_energy_is_grid_energy_times_efficiency_and_soc_change_is_net_energy(log):
    check_energy_identities(log)


def test_soc_stays_within_zero_and_max_soc(log):
    check_soc_bounds(log)


def test_charger_port_serves_one_vehicle_at_a_time(log):
    check_ports_exclusive(log)


def test_charger_and_port_are_set_exactly_in_minutes_a_vehicle_is_plugged_in(log):
    check_plug_columns(log)


def test_completed_tasks_are_released_then_picked_up_then_delivered(log):
    check_task_order(log)


def test_energy_cost_grid_energy_and_site_power_follow_from_the_minute_tables(log):
    check_costs_and_site_power(log)


def test_no_vehicle_is_plugged_into_a_failed_charger(log):
    check_failures(log)


def test_metrics_recomputed_from_the_files_equal_the_summary(any_run):
    assert_metrics_recomputable(any_run.out)


def test_in_memory_metrics_equal_the_summary(any_run):
    stored = {k: m["value"] for k, m in read_summary(any_run.out)["metrics"].items()}
    assert log_from_model(any_run.model).metrics == stored


def test_prices_and_base_load_are_those_of_the_hour_of_each_minute(any_run):
    cfg = any_run.model.config
    grid = log_from_dir(any_run.out).grid
    hour = ((grid["time_min"].astype(int) - 1) // 60) % 24
    assert (grid["price_per_kwh"] == hour.map(cfg.tariff.energy_price_per_kwh.__getitem__)).all()
    assert (grid["base_load_kw"] == hour.map(cfg.site.base_load_kw.__getitem__)).all()
