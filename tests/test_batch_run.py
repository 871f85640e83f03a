"""FactoryModel is built by mesa.batch_run from plain keyword parameters plus rng."""

import mesa
import pandas as pd

from agentev import FactoryModel


def test_batch_run_builds_and_runs_factory_model_over_a_parameter_grid():
    rows = mesa.batch_run(
        FactoryModel,
        parameters={
            "scenario": "light",
            "strategy": ["fcfs", "uncontrolled"],
            "num_vehicles": [4, 6],
            "duration_h": 1.0,
        },
        rng=[3],
        max_steps=60,
        number_processes=1,
        display_progress=False,
    )
    df = pd.DataFrame(rows)
    assert len(df) == 4
    assert sorted(set(zip(df["strategy"], df["num_vehicles"], strict=True))) == [
        ("fcfs", 4),
        ("fcfs", 6),
        ("uncontrolled", 4),
        ("uncontrolled", 6),
    ]
    assert (df["Step"] == 60).all()
    assert df["mean_soc"].between(0.0, 1.0).all()
    # Common random numbers: the same seed releases the same tasks whatever the strategy.
    same_seed = FactoryModel(scenario="light", strategy="fcfs", rng=3, num_vehicles=4)
    other = FactoryModel(scenario="light", strategy="uncontrolled", rng=3, num_vehicles=6)
    assert [t.release_min for t in same_seed.task_trace] == [
        t.release_min for t in other.task_trace
    ]
