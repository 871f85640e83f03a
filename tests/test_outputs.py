"""Output files: determinism, common random numbers, full-precision floats."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from agentev.model import FactoryModel, SimulationModel
from agentev.outputs import write_outputs
from agentev.strategies import STRATEGIES
from tests.helpers import (
    BASELINES,
    OUTPUT_FILES,
    file_bytes,
    log_from_dir,
    log_from_model,
    run_model,
)

TRACE = ["task_id", "release_min", "due_min", "pickup_station", "dropoff_station"]


def test_same_seed_gives_byte_identical_files(light_fcfs_day, tmp_path):
    run_model(tmp_path, scenario="light", strategy="fcfs", rng=42)
    assert file_bytes(tmp_path) == file_bytes(light_fcfs_day.out)


def test_same_seed_gives_byte_identical_files_with_failures(failing_chargers_fcfs, tmp_path):
    model = failing_chargers_fcfs.model
    run_model(
        tmp_path,
        scenario=failing_chargers_fcfs.model.config,
        strategy="fcfs",
        rng=model.seed,
        duration_h=model.config.duration_h,
    )
    assert file_bytes(tmp_path) == file_bytes(failing_chargers_fcfs.out)


def test_running_in_pieces_gives_the_same_files_as_one_run(tmp_path):
    whole = run_model(tmp_path / "whole", scenario="heavy", rng=9, duration_h=4)
    pieces = FactoryModel("heavy", rng=9, duration_h=4)
    pieces.run_for(37)
    assert pieces.time == 37 and pieces.steps == 37
    pieces.run_for(100.5)
    pieces.run()
    assert pieces.time == whole.time == 240
    assert not pieces.running
    write_outputs(pieces, tmp_path / "pieces")
    assert file_bytes(tmp_path / "pieces") == file_bytes(tmp_path / "whole")


def test_different_seeds_give_different_task_traces(tmp_path):
    for seed in (1, 2):
        run_model(tmp_path / str(seed), scenario="light", rng=seed, duration_h=4)
    a, b = (file_bytes(tmp_path / s)["tasks.csv"] for s in ("1", "2"))
    assert a != b
    assert len(pd.read_csv(tmp_path / "1" / "tasks.csv")) > 0


def test_simulation_model_is_the_factory_model_with_the_seed_names(tmp_path):
    default = SimulationModel()
    assert default.config.num_vehicles == 10
    assert default.duration_min == 24 * 60
    assert default.seed == 42
    sim = SimulationModel(num_vehicles=6, simulation_time=3, random_seed=8)
    sim.run()
    write_outputs(sim, tmp_path / "sim")
    run_model(tmp_path / "factory", num_vehicles=6, duration_h=3, rng=8)
    assert file_bytes(tmp_path / "sim") == file_bytes(tmp_path / "factory")


# --------------------------------------------------------------------------- common random numbers
@pytest.mark.parametrize("scenario", ["light", "flexible"])
def test_task_trace_is_the_same_for_every_strategy_and_fleet_size(scenario, tmp_path):
    traces = []
    for strategy in (*BASELINES, "intelligent"):
        for n in (2, 8, 14):
            out = tmp_path / f"{strategy}-{n}"
            run_model(
                out, scenario=scenario, strategy=strategy, num_vehicles=n, rng=5, duration_h=6
            )
            traces.append(pd.read_csv(out / "tasks.csv"))
    assert len(traces[0]) > 10
    for trace in traces[1:]:
        pd.testing.assert_frame_equal(trace[TRACE], traces[0][TRACE], check_exact=True)
    # ... while the outcomes differ: the fleets did different things
    assert not traces[0].equals(traces[2])


def test_initial_state_of_charge_is_the_same_for_every_strategy():
    initial = []
    for strategy in sorted(STRATEGIES):
        model = FactoryModel("heavy", strategy=strategy, rng=13, duration_h=1)
        ts = model.recorder.timeseries()
        initial.append(ts[ts["time_min"] == 0][["vehicle_id", "soc", "x", "y"]])
    assert initial[0]["soc"].nunique() == len(initial[0])  # drawn, not constant
    for other in initial[1:]:
        pd.testing.assert_frame_equal(other, initial[0], check_exact=True)


# --------------------------------------------------------------------------- precision
def _same_column(memory: pd.Series, read: pd.Series) -> bool:
    if pd.api.types.is_float_dtype(memory.dtype):
        return np.array_equal(
            memory.to_numpy(float), read.to_numpy(float), equal_nan=True
        ) and bool((np.signbit(memory.to_numpy(float)) == np.signbit(read.to_numpy(float))).all())
    as_list = lambda s: [None if pd.isna(v) else v for v in s.astype(object)]  # noqa: E731
    return as_list(memory) == as_list(read)


@pytest.mark.parametrize("table", ["timeseries", "grid", "tasks", "sessions", "charger_events"])
def test_values_read_back_from_the_csv_files_equal_the_in_memory_values_exactly(any_run, table):
    memory = getattr(log_from_model(any_run.model), table)
    read = getattr(log_from_dir(any_run.out), table)
    assert list(read.columns) == list(memory.columns)
    assert len(read) == len(memory)
    for col in memory.columns:
        assert _same_column(memory[col], read[col]), f"{table}.{col} lost precision"


PLANNING_FILES = ("replans.csv", "overrides.csv", "timing.json")


def test_every_output_file_is_written(any_run):
    expected = list(OUTPUT_FILES)
    if any_run.model.config.strategy in ("intelligent", "hindsight"):
        expected += PLANNING_FILES
    if any_run.model.config.strategy in ("negotiation", "intelligent", "hindsight"):
        expected.append("messages.jsonl")  # intelligent and oracle: their safety net's
    assert sorted(p.name for p in any_run.out.iterdir()) == sorted(expected)
