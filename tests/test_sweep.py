"""Parameter sweeps with mesa.batch_run and the Pareto front of the objective weights."""

from __future__ import annotations

import argparse
import math
import multiprocessing

import mesa
import pandas as pd
import pytest

from agentev import FactoryModel
from agentev.experiments import sweep as sweep_module
from agentev.experiments.sweep import (
    MODEL_PARAMETERS,
    add_parser,
    pareto_front,
    parse_params,
    parse_value,
    run_command,
    simplex_weights,
    sweep,
    weights_sweep,
)
from agentev.metrics import DEFINITIONS
from agentev.outputs import model_metrics
from agentev.scenario import ScenarioError

# A threshold of 0.9 makes vehicles charge within the first hour, so the energy metrics are
# not all zero.
PARAMETERS = {
    "scenario": "light",
    "strategy": ["fcfs", "negotiation"],
    "num_vehicles": [6, 8],
    "duration_h": 1,
    "charge_threshold": 0.9,
}
KEYS = ["scenario", "strategy", "num_vehicles", "duration_h", "charge_threshold"]


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return sweep(PARAMETERS, replications=2, seed=5)


def _cli(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="agentev")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def test_sweep_has_one_row_per_combination_and_replication_with_tidy_columns(table):
    assert len(table) == 2 * 2 * 2
    assert list(table.columns) == [*KEYS, "replication", "seed", *DEFINITIONS]
    # Sorted by the parameters, then the replication.
    assert table[["strategy", "num_vehicles", "replication"]].apply(tuple, axis=1).tolist() == [
        (s, n, k) for s in ("fcfs", "negotiation") for n in (6, 8) for k in (0, 1)
    ]
    assert (table["scenario"] == "light").all() and (table["duration_h"] == 1).all()


def test_sweep_metrics_are_those_of_the_same_model_run_directly(table):
    assert table["charging_sessions"].gt(0).all()  # the runs did something worth comparing
    for row in table.itertuples(index=False):
        model = FactoryModel(
            scenario="light",
            strategy=row.strategy,
            num_vehicles=row.num_vehicles,
            duration_h=1,
            charge_threshold=0.9,
            rng=row.seed,
        )
        model.run()
        direct = model_metrics(model)
        for name in DEFINITIONS:
            assert _same(getattr(row, name), direct[name].value), (row.strategy, name)


def test_replication_k_has_seed_plus_k_for_every_combination(table):
    assert (table["seed"] == 5 + table["replication"]).all()
    # Common random numbers: at a replication every strategy and fleet sees the same tasks.
    released = table.groupby("replication")["tasks_released"].nunique()
    assert (released == 1).all()


def test_sweep_gives_the_same_table_twice_and_restores_the_start_method(table):
    before = multiprocessing.get_start_method(allow_none=True)
    again = sweep(PARAMETERS, replications=2, seed=5)
    pd.testing.assert_frame_equal(again, table, check_exact=True)
    assert multiprocessing.get_start_method(allow_none=True) == before


def test_unknown_parameter_is_named_with_its_value_and_the_allowed_names():
    with pytest.raises(ValueError) as info:
        sweep({"strategy": "fcfs", "num_vehicle": [6, 8]})
    message = str(info.value)
    assert "num_vehicle = [6, 8]" in message
    assert "unknown parameter" in message
    for name in MODEL_PARAMETERS:
        assert name in message
    assert "rng" not in MODEL_PARAMETERS


def test_a_bad_value_is_rejected_before_anything_runs(monkeypatch):
    def no_run(*args, **kwargs):
        raise AssertionError("batch_run must not be called")

    monkeypatch.setattr(mesa, "batch_run", no_run)
    with pytest.raises(ScenarioError, match="num_vehicles = 0"):
        sweep({"num_vehicles": [6, 0], "duration_h": 1})
    with pytest.raises(ValueError, match="empty"):
        sweep({"num_vehicles": []})
    with pytest.raises(ValueError, match="replications = 0"):
        sweep({"num_vehicles": 6}, replications=0)


def test_pareto_front_keeps_non_dominated_points_and_ties():
    points = pd.DataFrame(
        {
            "energy_cost_total": [1.0, 2.0, 3.0, 2.0, 1.0, 4.0, 3.0, 5.0, 1.0],
            "service_shortfall_vehicle_h": [5.0, 3.0, 1.0, 3.0, 6.0, 1.0, 2.0, 0.0, 5.0],
        },
        index=list("abcdefghi"),
    )
    front = pareto_front(points)
    assert front.dtype == bool and list(front.index) == list(points.index)
    # a, i: equal, both on the front; b, d: equal, both on; c, h on. e is dominated by a
    # (same cost, more shortfall); f by c (same shortfall, more cost); g by c.
    assert front[front].index.tolist() == ["a", "b", "c", "d", "h", "i"]


def test_pareto_front_on_other_columns_and_with_missing_values():
    points = pd.DataFrame({"x": [1.0, float("nan"), 2.0], "y": [2.0, 0.0, 1.0]})
    assert pareto_front(points, cost="x", shortfall="y").tolist() == [True, False, True]
    assert pareto_front(points.iloc[:0], cost="x", shortfall="y").empty
    with pytest.raises(ValueError, match="'energy_cost_total' not in the table"):
        pareto_front(points)


def test_weights_sweep_reports_means_per_triple_and_its_pareto_front():
    triples = [(1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.25, 0.5, 0.25)]
    table = weights_sweep(
        scenario="light",
        strategy="intelligent",
        weights=triples,
        duration_h=1,
        parameters={"charge_threshold": 0.9},
    )
    assert len(table) == 3
    assert list(table.columns[:6]) == [
        "alpha_energy",
        "alpha_downtime",
        "alpha_utilization",
        "n",
        "energy_cost_total",
        "service_shortfall_vehicle_h",
    ]
    assert table.columns[-1] == "pareto"
    assert set(DEFINITIONS) <= set(table.columns)
    assert table.iloc[:, :3].apply(tuple, axis=1).tolist() == triples  # order given
    assert (table["n"] == 1).all()
    assert table["energy_cost_total"].tolist() == pytest.approx(
        (table["energy_cost_adjusted"] + table["demand_charge"]).tolist(), rel=1e-12
    )
    assert table["replans"].gt(0).all()  # the controller planned with these weights
    assert table["pareto"].tolist() == pareto_front(table).tolist()
    assert table["pareto"].any()


def test_weights_are_validated_with_a_clear_message():
    for bad in ([(1.0, -0.5, 0.5)], [(0.0, 0.0, 0.0)], [(1.0, 0.0)], [(1.0, 0.0, float("nan"))]):
        with pytest.raises(ValueError, match="each >= 0, with a sum > 0"):
            weights_sweep(weights=bad, duration_h=1)
    with pytest.raises(ValueError, match="given twice"):
        weights_sweep(weights=[(1, 0, 0), (1, 0, 0)], duration_h=1)


def test_default_weights_are_the_simplex_grid_of_step_a_quarter():
    grid = simplex_weights(0.25)
    assert len(grid) == 15 == len(set(grid))
    assert all(sum(t) == 1.0 and min(t) >= 0.0 for t in grid)
    assert {w for t in grid for w in t} == {0.0, 0.25, 0.5, 0.75, 1.0}


def test_param_values_are_read_as_int_then_float_then_text():
    assert parse_value("6") == 6 and isinstance(parse_value("6"), int)
    assert parse_value("0.5") == 0.5
    assert parse_value("perfect") == "perfect"
    assert parse_params(["num_vehicles=6,8", "forecaster=rate,perfect"]) == {
        "num_vehicles": [6, 8],
        "forecaster": ["rate", "perfect"],
    }


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ("num_vehicles", "expected NAME=V1,V2"),
        ("num_vehicles=6,,8", "expected NAME=V1,V2"),
        ("nmu_vehicles=6", "unknown parameter 'nmu_vehicles'; allowed: num_vehicles"),
        ("strategy=fcfs", "use the option --strategy"),
    ],
)
def test_bad_param_option_names_the_option_and_the_value(item, expected):
    with pytest.raises(ValueError) as info:
        parse_params([item])
    assert str(info.value).startswith(f"--param {item!r}")
    assert expected in str(info.value)


def test_run_command_writes_sweep_csv_from_the_param_options(tmp_path, capsys):
    out = tmp_path / "out"
    args = _cli(
        [
            "sweep",
            "--strategy",
            "fcfs,negotiation",
            "--param",
            "num_vehicles=6,8",
            "--param",
            "charge_threshold=0.9",
            "--hours",
            "1",
            "--replications",
            "2",
            "--seed",
            "5",
            "--output-dir",
            str(out),
        ]
    )
    assert run_command(args) == 0
    assert sorted(p.name for p in out.iterdir()) == ["sweep.csv"]
    written = pd.read_csv(out / "sweep.csv")
    expected = sweep(
        {
            "scenario": "light",
            "strategy": ["fcfs", "negotiation"],
            "num_vehicles": [6, 8],
            "charge_threshold": [0.9],
            "duration_h": 1.0,
        },
        replications=2,
        seed=5,
    )
    pd.testing.assert_frame_equal(written, expected, check_exact=True, check_dtype=False)
    printed = capsys.readouterr().out
    assert f"8 rows written to {out / 'sweep.csv'}" in printed


def test_run_command_rejects_bad_options_before_running(tmp_path):
    base = ["sweep", "--output-dir", str(tmp_path)]
    with pytest.raises(ValueError, match="--replications = 0"):
        run_command(_cli([*base, "--replications", "0"]))
    with pytest.raises(ValueError, match="--weights takes a single strategy"):
        run_command(_cli([*base, "--weights", "--strategy", "intelligent,oracle"]))
    with pytest.raises(ValueError, match="--hours also sets duration_h"):
        run_command(_cli([*base, "--hours", "1", "--param", "duration_h=1,2"]))
    assert list(tmp_path.iterdir()) == []


def test_run_command_with_weights_writes_pareto_csv(tmp_path, monkeypatch):
    # Three triples instead of the 15 of the default grid, to keep the test fast.
    triples = [(1.0, 0.0, 0.0), (0.5, 0.5, 0.0), (0.0, 0.0, 1.0)]
    monkeypatch.setattr(sweep_module, "simplex_weights", lambda step: triples)
    args = _cli(["sweep", "--weights", "--hours", "1", "--output-dir", str(tmp_path)])
    assert args.strategy is None  # intelligent, chosen by run_command
    assert run_command(args) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pareto.csv"]
    table = pd.read_csv(tmp_path / "pareto.csv")
    assert len(table) == 3 and table["pareto"].dtype == bool
    assert table["replans"].gt(0).all()


def test_sweep_on_two_worker_processes_gives_the_serial_table():
    # The model, its reporter and the results must pickle (batch_run starts workers by spawn).
    parameters = {"strategy": ["fcfs", "uncontrolled"], "duration_h": 0.5}
    parallel = sweep(parameters, seed=3, number_processes=2)
    pd.testing.assert_frame_equal(parallel, sweep(parameters, seed=3), check_exact=True)
