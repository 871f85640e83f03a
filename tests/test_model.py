"""FactoryModel behaviour: data collection, dispatching, charging rules, charger failures."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from agentev.agents.controller import CommandError
from agentev.agents.vehicle import VehicleState
from agentev.model import MODEL_REPORTERS, FactoryModel
from agentev.tasks import Task
from tests.helpers import (
    check_invariants,
    check_plug_columns,
    check_ports_exclusive,
    failure_intervals,
    log_from_dir,
    log_from_model,
    read_summary,
    run_model,
)


# --------------------------------------------------------------------------- DataCollector
def test_datacollector_has_one_row_per_step_plus_the_initial_one(light_fcfs_day):
    model = light_fcfs_day.model
    df = model.datacollector.get_model_vars_dataframe()
    assert len(df) == model.steps + 1 == 24 * 60 + 1
    assert list(df.columns) == list(MODEL_REPORTERS)
    for column in ("mean_soc", "vehicles_charging", "vehicles_queued", "task_backlog"):
        assert column in df.columns


def test_datacollector_agrees_with_the_run_log(light_fcfs_day):
    model = light_fcfs_day.model
    df = model.datacollector.get_model_vars_dataframe()
    log = log_from_dir(light_fcfs_day.out)
    ts = log.timeseries
    by_minute = ts.groupby("time_min")
    assert np.allclose(df["mean_soc"], by_minute["soc"].mean(), rtol=0, atol=1e-12)
    charging = by_minute["state"].agg(lambda s: int((s == "charging").sum()))
    assert (df["vehicles_charging"].to_numpy() == charging.to_numpy()).all()
    assert df["vehicles_charging"].max() > 0
    grid = log.grid
    assert (df["site_power_kw"].iloc[1:].to_numpy() == grid["site_power_kw"].to_numpy()).all()
    assert (df["price_per_kwh"].iloc[1:].to_numpy() == grid["price_per_kwh"].to_numpy()).all()
    completed = df["tasks_completed"]
    assert (completed.diff().dropna() >= 0).all()
    assert completed.iloc[-1] == model.tasks_completed == log.tasks["delivery_min"].notna().sum()


def test_run_for_advances_the_given_minutes():
    model = FactoryModel("light", rng=1, duration_h=2)
    model.run_for(30)
    assert model.time == 30 and model.steps == 30
    assert len(model.recorder.grid_rows) == 30
    assert model.running
    model.run()
    assert model.time == 120 and not model.running


# --------------------------------------------------------------------------- behaviour
@pytest.mark.parametrize("run", ["light_fcfs_day", "light_uncontrolled_day"])
def test_light_day_completes_tasks_and_charges(request, run):
    metrics = read_summary(request.getfixturevalue(run).out)["metrics"]
    assert metrics["tasks_completed"]["value"] > 0
    assert metrics["charging_sessions"]["value"] > 0
    assert metrics["completion_ratio"]["value"] > 0.9
    assert 0 < metrics["availability"]["value"] <= 1


def test_only_the_first_num_chargers_sites_are_used(heavy_tight_limit):
    model = heavy_tight_limit.model
    assert list(model.chargers) == ["C1", "C2", "C3", "C4"]
    used = set(log_from_dir(heavy_tight_limit.out).timeseries["charger_id"].dropna())
    assert used and used <= {"C1", "C2", "C3", "C4"}


def test_tight_grid_limit_binds_and_is_never_exceeded(heavy_tight_limit):
    grid = log_from_dir(heavy_tight_limit.out).grid
    limit = 36.0
    assert (grid["site_power_kw"] <= limit + 1e-9).all()
    assert (grid["site_power_kw"] > limit - 1e-6).sum() > 10  # the limit was binding


def _task(model: FactoryModel, pickup: str = "WS01", dropoff: str = "WS10") -> Task:
    return Task(task_id=999, release_min=0.0, due_min=30.0, pickup=pickup, dropoff=dropoff)


def test_dispatcher_refuses_a_job_that_would_leave_the_vehicle_below_min_soc():
    model = FactoryModel("light", rng=1, duration_h=1)
    vehicle = model.vehicles[0]
    battery = vehicle.battery
    task = _task(model)
    battery.energy_kwh = battery.max_soc * battery.capacity_kwh
    used = battery.energy_kwh - vehicle.energy_after(task)
    assert used > 0
    floor = battery.min_soc * battery.capacity_kwh
    battery.energy_kwh = floor + used
    assert model.dispatcher.can_do(vehicle, task)
    battery.energy_kwh = floor + used - 1e-6
    assert not model.dispatcher.can_do(vehicle, task)
    battery.energy_kwh = floor * 0.9  # below min_soc already
    assert not model.dispatcher.can_do(vehicle, task)


def test_vehicle_below_min_soc_takes_no_job():
    """In a run where vehicles get low, none is given a job it cannot finish above min_soc."""
    model = run_model(scenario="light", strategy="fcfs", rng=42, charge_threshold=0.2)
    log = log_from_model(model)
    ts = log.timeseries.sort_values(["vehicle_id", "time_min"], kind="stable")
    min_soc = ts["vehicle_id"].map(log.fleet.set_index("vehicle_id")["min_soc"])
    by_vehicle = ts.groupby("vehicle_id")
    previous_task = by_vehicle["task_id"].shift(1)
    previous_soc = by_vehicle["soc"].shift(1)
    assigned = ts["task_id"].notna() & (ts["time_min"] > 0)
    assigned &= ts["task_id"].ne(previous_task).fillna(True).astype(bool)
    assert assigned.sum() > 100
    # the rule was exercised: some vehicles took jobs close to their min_soc
    assert (previous_soc[assigned] < min_soc[assigned] + 0.05).any()
    low = assigned & (previous_soc < min_soc)
    assert not low.any(), ts[low]


def test_lead_acid_vehicles_start_charging_only_below_the_threshold(flexible_lead_acid_day):
    log = log_from_dir(flexible_lead_acid_day.out)
    threshold = flexible_lead_acid_day.model.config.charge_threshold
    lead_acid = set(log.fleet.loc[log.fleet["chemistry"] == "lead-acid", "vehicle_id"])
    sessions = log.sessions[log.sessions["vehicle_id"].isin(lead_acid)]
    assert len(sessions) > 0
    soc = log.timeseries.set_index(["time_min", "vehicle_id"])["soc"]
    for s in sessions.itertuples():
        # the SoC at the end of the minute the vehicle asked, before it could plug in
        asked = soc[(float(math.ceil(s.need_min)), s.vehicle_id)]
        assert asked < threshold, s


def test_lead_acid_charge_cannot_be_released_before_its_target():
    model = FactoryModel("flexible", strategy="uncontrolled", rng=3, charge_threshold=0.45)
    charging = []
    while not charging and model.time < 600:
        model.run_for(1)
        charging = [
            v
            for v in model.vehicles
            if v.battery.lead_acid and v.state is VehicleState.CHARGING and v.soc < 0.99
        ]
    assert charging, "no lead-acid vehicle charged"
    with pytest.raises(CommandError, match="lead-acid"):
        model.commands.release(charging[0].unique_id)
    assert charging[0].state is VehicleState.CHARGING


def test_charge_commands_check_vehicle_charger_and_target():
    model = FactoryModel("light", rng=1, duration_h=1)
    commands = model.commands
    with pytest.raises(CommandError, match=r"vehicle_id = 99: unknown vehicle; allowed: 1\.\.8"):
        commands.charge(99, "C1", 1.0)
    with pytest.raises(CommandError, match="charger_id = 'C9': unknown charger; allowed: C1"):
        commands.charge(1, "C9", 1.0)
    with pytest.raises(CommandError, match=r"until_soc = 1.5: must be within \[0.2, 1.0\]"):
        commands.charge(1, "C1", 1.5)


# --------------------------------------------------------------------------- charger failures
@pytest.mark.parametrize("run", ["failing_chargers_fcfs", "failing_chargers_uncontrolled"])
def test_charger_failures_are_recorded_and_unplug_the_vehicles(request, run):
    shared = request.getfixturevalue(run)
    log = log_from_dir(shared.out)
    intervals = failure_intervals(log)
    assert len(intervals) >= 5
    assert log.metrics["charger_failures"] == sum(
        c.failures for c in shared.model.chargers.values()
    )
    cut = log.sessions[log.sessions["end_reason"] == "charger_failure"]
    assert len(cut) > 0
    failed_at = {(cid, t) for cid, t, _ in intervals}
    for s in cut.itertuples():
        assert (s.charger_id, s.plug_out_min) in failed_at
    # vehicles cut off charge again later
    later = log.sessions.dropna(subset=["plug_in_min"])
    for s in cut.itertuples():
        again = later[
            (later["vehicle_id"] == s.vehicle_id) & (later["plug_in_min"] >= s.plug_out_min)
        ]
        waiting = log.sessions[
            (log.sessions["vehicle_id"] == s.vehicle_id) & (log.sessions["end_reason"] == "waiting")
        ]
        assert len(again) + len(waiting) > 0, s


@pytest.mark.parametrize("strategy", ["fcfs", "uncontrolled"])
def test_charger_failing_while_vehicles_drive_to_it_sends_them_elsewhere(strategy):
    model = FactoryModel(
        "light", strategy=strategy, rng=3, duration_h=4, charge_threshold=0.6, num_chargers=2
    )
    while not any(v.state is VehicleState.TO_CHARGER for v in model.vehicles):
        model.run_for(0.05)
    vehicle = next(v for v in model.vehicles if v.state is VehicleState.TO_CHARGER)
    broken = vehicle.target_charger
    broken._fail()  # the failure event, now
    assert broken.failed
    assert (
        not broken.heading and not broken.queue and broken.reserved == [None] * len(broken.reserved)
    )
    for v in model.vehicles:
        assert v.target_charger is not broken and v.charger is not broken
        if v.state is VehicleState.TO_CHARGER:
            assert v.target_charger is not None and not v.target_charger.failed
    for charger in model.chargers.values():  # every reservation is held by a vehicle going there
        for held in charger.reserved:
            assert held is None or (
                held.target_charger is charger and held.state is VehicleState.TO_CHARGER
            )
    model.run()
    check_invariants(log_from_model(model))


def test_release_at_a_whole_minute_does_not_double_book_the_port():
    """A controller acting at a whole minute frees a port that the next vehicle takes at once."""
    model = FactoryModel(
        "light", strategy="uncontrolled", rng=1, duration_h=3, charge_threshold=0.6, num_chargers=1
    )
    charger = model.chargers["C1"]
    while not (charger.occupant[0] is not None and charger.queue):
        model.run_for(1)
        assert model.time < 150, "no queue formed at C1"
    released = charger.occupant[0]
    waiting = charger.queue[0]
    now = model.time
    model.commands.release(released.unique_id)
    model.run_for(0.5)
    assert charger.occupant[0] is waiting
    assert waiting.session[5] == now  # plugged in at the same whole minute
    model.run()
    log = log_from_model(model)
    check_ports_exclusive(log)
    check_plug_columns(log)
    ts = log.timeseries.set_index(["time_min", "vehicle_id"])
    assert pd.isna(ts.loc[(now + 1, released.unique_id), "charger_id"])
    assert ts.loc[(now + 1, waiting.unique_id), "charger_id"] == "C1"
    assert ts.loc[(now, released.unique_id), "charger_id"] == "C1"
