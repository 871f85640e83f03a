"""The lower bound of the weighted objective and the cheapest bill of a run's operations."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentev.agents.vehicle import FREE_STATES, VehicleState
from agentev.model import FactoryModel
from agentev.optimization.bound import (
    battery_emptied,
    bound_input,
    cheapest_bill,
    objective_lower_bound,
)
from agentev.outputs import fleet_frame, model_metrics
from agentev.strategies import STRATEGIES
from agentev.strategies.base import ChargingStrategy

#: Every registered strategy once (an alias kept for old names is the same class).
STRATEGY_NAMES = sorted({cls: name for name, cls in reversed(list(STRATEGIES.items()))}.values())


def lower_bound(**kwargs) -> float:
    model = FactoryModel(**{**kwargs, "strategy": "fcfs"})
    return objective_lower_bound(bound_input(model)).objective


def run(**kwargs) -> FactoryModel:
    model = FactoryModel(**kwargs)
    model.run()
    return model


def bill_of(model: FactoryModel) -> tuple[float, float]:
    """The run's bill and the cheapest bill of its operations."""
    m = model_metrics(model)
    rec = model.recorder
    fleet = fleet_frame(model)
    cheapest = cheapest_bill(
        rec.timeseries(),
        rec.grid(),
        rec.tasks(),
        fleet,
        model.config.tariff.demand_charges,
        model.num_ports,
        model.config.site.grid_limit_kw,
    )
    return m["energy_cost_adjusted"].value + m["demand_charge"].value, cheapest.bill


CASES = [
    ("light", 0, 4.0),
    ("light", 1, 4.0),
    ("heavy", 0, 4.0),
    ("heavy", 3, 4.0),
    ("flexible", 2, 4.0),
    ("continuous", 1, 4.0),
    ("heavy-tou", 4, 4.0),
]


@pytest.mark.parametrize(("scenario", "seed", "hours"), CASES)
def test_no_strategy_runs_below_the_lower_bound(scenario, seed, hours):
    bound = lower_bound(scenario=scenario, rng=seed, duration_h=hours)
    assert bound > 0.0
    for name in STRATEGY_NAMES:
        model = run(scenario=scenario, strategy=name, rng=seed, duration_h=hours)
        assert not battery_emptied(model.recorder.timeseries())  # the bound's premise
        j = model_metrics(model)["weighted_objective"].value
        assert j >= bound - 1e-9, (name, j, bound)


@settings(max_examples=8, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    vehicles=st.integers(2, 10),
    chargers=st.integers(1, 3),
    grid_limit=st.sampled_from([None, 34.0, 40.0]),
    hours=st.sampled_from([2.0, 3.5, 6.0]),
)
def test_fcfs_and_uncontrolled_never_beat_the_bound(seed, vehicles, chargers, grid_limit, hours):
    kwargs = dict(
        scenario="heavy",
        rng=seed,
        num_vehicles=vehicles,
        num_chargers=chargers,
        grid_limit_kw=grid_limit,
        duration_h=hours,
    )
    bound = lower_bound(**kwargs)
    for name in ("fcfs", "uncontrolled"):
        model = run(strategy=name, **kwargs)
        assert not battery_emptied(model.recorder.timeseries())
        assert model_metrics(model)["weighted_objective"].value >= bound - 1e-9


class Scripted(ChargingStrategy):
    """Plugs vehicle ``i`` in during period ``k`` iff ``pattern[i][k]`` (brute force)."""

    name = "scripted"

    def __init__(self, model, pattern, period_min: int = 15) -> None:
        super().__init__(model)
        self.pattern = pattern
        self.period_min = period_min

    def needs_charge(self, vehicle) -> bool:
        return False

    def request(self, vehicle) -> None:
        raise AssertionError("a scripted vehicle never asks")

    def on_step(self, t: int) -> None:
        if t % self.period_min:
            return
        k = t // self.period_min
        for i, vehicle in enumerate(self.model.vehicles):
            want = k < len(self.pattern[i]) and self.pattern[i][k]
            charging = vehicle.state in (VehicleState.CHARGING, VehicleState.TO_CHARGER)
            if charging and not want:
                self.commands.release(vehicle.unique_id)
            elif want and not charging and vehicle.state in FREE_STATES:
                ready = [c for c in self.model.chargers.values() if c.free_port() is not None]
                charger = self.nearest(vehicle, ready)
                if charger is not None:
                    self.commands.charge(
                        vehicle.unique_id, charger.charger_id, 1.0, port=charger.free_port()
                    )


def test_on_a_tiny_instance_the_bound_is_at_most_the_brute_force_optimum():
    # two vehicles, one charger, 45 minutes: every plug-in pattern per quarter hour (64 runs)
    kwargs = dict(scenario="light", num_vehicles=2, num_chargers=1, duration_h=0.75, rng=3)
    bound = lower_bound(**kwargs)
    periods = 3
    best = np.inf
    for bits in itertools.product((False, True), repeat=2 * periods):
        pattern = [bits[:periods], bits[periods:]]
        model = FactoryModel(strategy="fcfs", **kwargs)
        model.strategy = Scripted(model, pattern)
        model.run()
        best = min(best, model_metrics(model)["weighted_objective"].value)
    assert 0.0 < bound <= best + 1e-9


def test_highs_and_glpk_give_the_same_bound():
    model = FactoryModel(scenario="heavy", strategy="fcfs", rng=5, duration_h=3.0)
    data = bound_input(model)
    highs = objective_lower_bound(data, solver="highs").objective
    glpk = objective_lower_bound(data, solver="glpk").objective
    assert highs == pytest.approx(glpk, rel=1e-6)


@pytest.mark.parametrize("strategy", ["fcfs", "uncontrolled", "intelligent"])
def test_cheapest_bill_is_at_most_the_runs_own_bill(strategy):
    model = run(scenario="heavy", strategy=strategy, rng=1, duration_h=6.0)
    bill, cheapest = bill_of(model)
    assert cheapest <= bill + 1e-9
    assert cheapest > 0.0


def test_savings_captured_comes_from_the_logs_and_is_zero_for_fcfs(tmp_path):
    import json

    from agentev.metrics import metrics_from_dir
    from agentev.outputs import run_and_write

    kwargs = dict(scenario="light", rng=2, hours=6.0)
    _, fcfs = run_and_write(tmp_path / "fcfs", strategy="fcfs", **kwargs)
    _, smart = run_and_write(tmp_path / "smart", strategy="intelligent", **kwargs)
    assert fcfs["savings_captured"].value == 0.0
    assert fcfs["possible_saving"].value > 0.0
    assert smart["possible_saving"].value == fcfs["possible_saving"].value
    bill = smart["energy_cost_adjusted"].value + smart["demand_charge"].value
    fcfs_bill = fcfs["energy_cost_adjusted"].value + fcfs["demand_charge"].value
    assert smart["savings_captured"].value == pytest.approx(
        (fcfs_bill - bill) / fcfs["possible_saving"].value
    )
    assert 0.0 <= smart["gap_to_lower_bound"].value
    # recomputed from the files alone: the same values, the cheapest bill solved again
    for name, metrics in (("fcfs", fcfs), ("smart", smart)):
        again = metrics_from_dir(tmp_path / name)
        assert {k: m.value for k, m in again.items()} == {k: m.value for k, m in metrics.items()}
        summary = json.loads((tmp_path / name / "summary.json").read_text())
        assert summary["references"]["fcfs_bill"] == pytest.approx(fcfs_bill)


def test_the_old_oracle_names_still_work_with_a_deprecation_warning(tmp_path):
    import json

    from agentev.metrics import metrics_from_dir
    from agentev.outputs import write_outputs

    with pytest.warns(DeprecationWarning, match="hindsight"):
        model = FactoryModel(scenario="light", strategy="oracle", rng=1, duration_h=2.0)
    assert model.config.strategy == "hindsight"
    model.run()
    write_outputs(model, tmp_path, cheapest=False)
    path = tmp_path / "summary.json"
    summary = json.loads(path.read_text())
    summary["oracle_weighted_objective"] = 2.0  # as written before the rename
    path.write_text(json.dumps(summary))
    with pytest.warns(DeprecationWarning, match="oracle_weighted_objective"):
        metrics = metrics_from_dir(tmp_path)
    j = metrics["weighted_objective"].value
    assert metrics["gap_to_hindsight_plan"].value == pytest.approx((j - 2.0) / 2.0)
