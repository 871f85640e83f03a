"""The learned forecasters in the twin controller: chosen by name, robust quantile, seeds."""

from __future__ import annotations

import tomllib

import numpy as np
import pandas as pd
import pytest

from agentev import FactoryModel
from agentev.agents.controller import TwinState
from agentev.scenario import SCENARIO_DIR, ScenarioError, load_scenario, parse_scenario

HEAVY = (SCENARIO_DIR / "heavy.toml").read_text()


def model(**kwargs) -> FactoryModel:
    return FactoryModel("heavy", rng=3, strategy="intelligent", duration_h=2, **kwargs)


def test_the_controller_forecasts_with_the_learner_named_in_the_scenario_or_keywords():
    text = HEAVY.replace('solver = "highs"', 'solver = "highs"\nforecaster = "naive"')
    cfg = parse_scenario(tomllib.loads(text), "x.toml")
    assert cfg.controller.forecaster == "naive"
    m = FactoryModel(cfg, rng=3, duration_h=2, strategy="intelligent")
    assert m.strategy.optimizer.forecaster.name == "naive"
    m.run()
    assert m.strategy.optimizer.forecaster.name == "naive"
    assert model(forecaster="none").strategy.optimizer.forecaster.arrivals(0, 4, 15).sum() == 0


def test_robust_planning_provides_for_an_upper_quantile_of_the_forecast():
    mean = model(forecaster="naive")
    robust = model(forecaster="naive", forecast_quantile=0.9)
    for m in (mean, robust):
        m.run_for(90)
    a = mean.strategy.optimizer.forecaster.arrivals(90, 16, 15)
    b = robust.strategy.optimizer.forecaster.arrivals(90, 16, 15)
    assert (b >= a - 1e-9).all() and (b > a).any()
    # and the plan sees it: more vehicles needed at work in the robust plan's periods
    need_a = mean.strategy.optimizer.plan_input(TwinState.observe(mean)).needed_vehicles
    need_b = robust.strategy.optimizer.plan_input(TwinState.observe(robust)).needed_vehicles
    assert sum(need_b) > sum(need_a)


def test_a_learned_forecaster_leaves_the_run_reproducible_and_its_tasks_unchanged():
    a, b, rate = model(forecaster="random_forest"), model(forecaster="random_forest"), model()
    assert [t.release_min for t in a.task_trace] == [t.release_min for t in rate.task_trace]
    a.run()
    b.run()
    pd.testing.assert_frame_equal(a.recorder.timeseries(), b.recorder.timeseries())
    fa = a.strategy.optimizer.forecaster.arrivals(120, 8, 15)
    assert np.array_equal(fa, b.strategy.optimizer.forecaster.arrivals(120, 8, 15))


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            'forecaster = "crystal_ball"',
            "controller.forecaster = 'crystal_ball': one of none, rate, perfect, naive",
        ),
        ("forecast_quantile = 1.5", "controller.forecast_quantile = 1.5: must be a number > 0.5"),
        ("warmup_days = 0", "controller.warmup_days = 0: must be an integer >= 1"),
    ],
)
def test_bad_forecast_settings_name_the_field_the_value_and_what_is_allowed(line, message):
    text = HEAVY.replace('solver = "highs"', f'solver = "highs"\n{line}')
    with pytest.raises(ScenarioError, match=message.replace("(", r"\(").replace(".", r"\.")):
        parse_scenario(tomllib.loads(text), "x.toml")
    with pytest.raises(ScenarioError, match="forecast_quantile = 0.3"):
        FactoryModel("heavy", rng=0, forecast_quantile=0.3)
    assert load_scenario("heavy").controller.forecast_quantile is None
