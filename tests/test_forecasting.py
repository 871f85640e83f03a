"""Forecasters: fit and predict on simulated history, beat the baseline, cover as stated,
never look at the future, read plant CSV logs, and keep the LSTM optional."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
from sklearn.base import clone

from agentev.forecasting import (
    FORECASTER_NAMES,
    ArrivalRateForecaster,
    LearnedDemandForecaster,
    PerfectForecaster,
    TaskLog,
    TaskLogError,
    ZeroForecaster,
    learner,
    load_task_log,
    make_forecaster,
    simulate_history,
    task_log_from_model,
)
from agentev.forecasting.evaluation import evaluate, held_out_rows, interval_coverage
from agentev.forecasting.features import feature_rows, period_values, training_frame
from agentev.forecasting.registry import default_spec
from agentev.model import FactoryModel
from agentev.scenario import load_scenario

TRAIN_DAYS, TEST_DAYS = 7, 3
TEST_START = -1440.0 * TEST_DAYS
#: Stated tolerance of the empirical coverage of a nominal 90 % interval on the 3 held-out
#: days (1,104 overlapping horizon rows: they are strongly correlated, so it is wide).
COVERAGE_TOL = 0.05


@pytest.fixture(scope="module")
def light():
    """The light scenario (two busy shifts, a quiet night) and 10 simulated days of it."""
    cfg = load_scenario("light")
    log = simulate_history(cfg, TRAIN_DAYS + TEST_DAYS, seed=7)
    return cfg, log, default_spec(cfg, log)


@pytest.fixture(scope="module")
def frames(light):
    cfg, log, spec = light
    x, y, starts = training_frame(log.until(TEST_START), "tasks", spec)
    xt, yt = held_out_rows(log, "tasks", spec, TEST_START)
    return x, y, starts, xt, yt


@pytest.mark.parametrize("name", ["naive", "random_forest", "gaussian_process", "ensemble", "lstm"])
def test_each_forecaster_fits_and_predicts_with_intervals(frames, name):
    x, y, starts, xt, yt = frames
    model = learner(name, random_state=3).fit(x, y, target_start_min=starts)
    mean = model.predict(xt)
    low, high = model.predict_interval(xt, 0.9)
    upper = model.predict_quantile(xt, 0.95)
    assert mean.shape == yt.shape and np.isfinite(mean).all()
    assert (low <= high).all()
    np.testing.assert_allclose(upper, high)  # the 95 % quantile tops the central 90 %
    assert (model.predict_quantile(xt, 0.99) >= upper - 1e-9).all()
    # a forecast that only copies its input would not track the daily pattern
    assert np.corrcoef(mean, yt)[0, 1] > 0.5
    assert clone(model).get_params() == model.get_params()
    if name == "lstm":  # it really trained
        assert model.loss_curve_[-1] < model.loss_curve_[0]


def test_gaussian_process_gives_its_own_std(frames):
    x, y, starts, xt, _ = frames
    gp = learner("gaussian_process", random_state=1).fit(x, y, target_start_min=starts)
    mean, std = gp.predict(xt, return_std=True)
    assert gp.conformal_ is None  # its own distribution, no conformal calibration
    assert (std > 0).all() and mean.shape == std.shape
    np.testing.assert_allclose(mean, gp.predict(xt))


def test_random_forest_beats_the_seasonal_naive_baseline_on_a_shift_pattern(light):
    _, log, spec = light
    scores = evaluate(log, TEST_START, spec, names=["naive", "random_forest"])
    naive, forest = scores
    assert (naive.forecaster, forest.forecaster) == ("naive", "random_forest")
    assert forest.mae < 0.9 * naive.mae
    assert forest.rmse < 0.9 * naive.rmse
    assert forest.mae_vs_naive == pytest.approx(forest.mae / naive.mae)


def test_gaussian_process_90_percent_intervals_cover_90_percent(frames):
    x, y, starts, xt, yt = frames
    gp = learner("gaussian_process", random_state=2).fit(x, y, target_start_min=starts)
    assert abs(interval_coverage(gp, xt, yt, 0.9) - 0.9) <= COVERAGE_TOL


@pytest.mark.parametrize("name", ["naive", "random_forest"])
def test_conformal_90_percent_intervals_cover_90_percent(frames, name):
    x, y, starts, xt, yt = frames
    model = learner(name, random_state=2).fit(x, y, target_start_min=starts)
    assert model.conformal_ is not None
    assert abs(interval_coverage(model, xt, yt, 0.9) - 0.9) <= COVERAGE_TOL
    # wider intervals cover more
    assert interval_coverage(model, xt, yt, 0.5) < interval_coverage(model, xt, yt, 0.9)


def test_features_read_only_the_log_before_their_origin(light):
    _, log, spec = light
    origins = np.array([-2000.0, -1000.0, -15.0])
    for q in ("tasks", "energy_kwh", "busy_vehicles"):
        for o in origins:
            a = feature_rows(log, q, spec, np.array([o]))
            b = feature_rows(log.until(o), q, spec, np.array([o]))
            assert a.equals(b), (q, o)


def _day_log(model: FactoryModel) -> TaskLog:
    model.run()
    return task_log_from_model(model)


def _scrambled_future(day: TaskLog, cutoff: float, rng: np.random.Generator) -> TaskLog:
    """The same past, a different future: new releases, pick-ups, deliveries and energy."""
    past = day.release_min < cutoff
    n_future = int(rng.integers(50, 400))
    release = np.sort(rng.uniform(cutoff, day.end_min, n_future))
    pickup = release + rng.uniform(0, 20, n_future)
    delivery = pickup + rng.uniform(1, 30, n_future)
    # tasks in service at the cut-off finish at other (later) times too
    old_pickup = np.where(day.pickup_min >= cutoff, day.pickup_min + 7.0, day.pickup_min)
    old_delivery = np.where(day.delivery_min >= cutoff, day.delivery_min + 11.0, day.delivery_min)
    energy = day.energy_kwh_per_min.copy()
    energy[int(cutoff) :] = rng.uniform(0, 5, len(energy) - int(cutoff))
    return replace(
        day,
        release_min=np.concatenate([day.release_min[past], release]),
        pickup_min=np.concatenate([old_pickup[past], pickup]),
        delivery_min=np.concatenate([old_delivery[past], delivery]),
        energy_kwh_per_min=energy,
    )


def test_a_forecast_never_depends_on_the_future(light):
    cfg, log, spec = light
    history = log.until(TEST_START).shifted(1440.0 * TEST_DAYS)  # ends at minute 0
    day = _day_log(FactoryModel(cfg, strategy="fcfs", rng=11))
    rng = np.random.default_rng(5)
    forecaster = make_forecaster(
        "random_forest", config=cfg, history=history, observed=day, rng=np.random.default_rng(1)
    )
    for cutoff in (360.0, 600.0, 905.0):
        other = LearnedDemandForecaster(
            forecaster.learners, spec, history, observed=_scrambled_future(day, cutoff, rng)
        )
        for q in ("tasks", "energy_kwh", "busy_vehicles"):
            for quantile in (None, 0.9):
                a = forecaster.forecast(q, cutoff, 16, 15.0, quantile)
                b = other.forecast(q, cutoff, 16, 15.0, quantile)
                np.testing.assert_array_equal(a, b)
        # and the future did change: the realised demand differs
        assert not np.array_equal(
            period_values(day, "tasks", cutoff + 15.0 * np.arange(16), 15.0),
            period_values(other.observed, "tasks", cutoff + 15.0 * np.arange(16), 15.0),
        )


def test_make_forecaster_on_a_running_model_uses_warm_up_days_and_its_past():
    model = FactoryModel("light", strategy="fcfs", rng=4)
    model.run_until(480)
    naive = make_forecaster("naive", model, warmup_days=2)
    assert naive.history.end_min == 0.0 and naive.history.start_min == -2880.0
    # the warm-up days are their own draw, not the measured day's trace
    assert len(naive.history.release_min) != len(model.task_trace)
    # the naive forecast of 08:00-12:00 is yesterday's 08:00-12:00 of the warm-up history
    starts = 480.0 + 15.0 * np.arange(16)
    np.testing.assert_allclose(
        naive.arrivals(480.0, 16, 15.0),
        period_values(naive.history, "tasks", starts - 1440.0, 15.0),
    )
    assert set(naive.learners) == {"tasks", "busy_vehicles", "energy_kwh"}
    assert (naive.energy_kwh(480.0, 16, 15.0) > 0).any()
    assert naive.busy_vehicles(480.0, 4, 15.0, quantile=0.9).shape == (4,)


def test_warm_up_history_is_reproducible_and_its_own_stream():
    cfg = load_scenario("light")
    a, b = simulate_history(cfg, 2, seed=9), simulate_history(cfg, 2, seed=9)
    np.testing.assert_array_equal(a.release_min, b.release_min)
    day = FactoryModel(cfg, strategy="fcfs", rng=9, duration_h=48)
    day_release = np.array([t.release_min for t in day.task_trace]) - 2880.0
    assert not np.array_equal(a.release_min[:100], day_release[:100])


def test_forecasters_by_name():
    cfg = load_scenario("light")
    model = FactoryModel(cfg, strategy="fcfs", rng=1)
    assert set(FORECASTER_NAMES) == {
        "none",
        "rate",
        "perfect",
        "naive",
        "random_forest",
        "gaussian_process",
        "ensemble",
        "lstm",
    }
    none = make_forecaster("none")
    assert isinstance(none, ZeroForecaster)
    np.testing.assert_array_equal(none.arrivals(0.0, 4, 15.0), np.zeros(4))
    rate = make_forecaster("rate", model)
    assert isinstance(rate, ArrivalRateForecaster)
    # 06:00-07:00 of light: 48 tasks per hour
    assert rate.arrivals(360.0, 4, 15.0).sum() == pytest.approx(48.0)
    perfect = make_forecaster("perfect", model)
    assert isinstance(perfect, PerfectForecaster)
    real = sum(360.0 <= t.release_min < 420.0 for t in model.task_trace)
    assert perfect.arrivals(360.0, 4, 15.0).sum() == real
    with pytest.raises(ValueError, match="allowed: none, rate, perfect, naive"):
        make_forecaster("prophet", model)


def test_robust_planning_takes_the_upper_quantile(light):
    cfg, log, spec = light
    history = log.until(TEST_START)
    kwargs = dict(config=cfg, history=history, quantities=("tasks",))
    mean = make_forecaster("random_forest", rng=np.random.default_rng(0), **kwargs)
    robust = make_forecaster("random_forest", rng=np.random.default_rng(0), quantile=0.9, **kwargs)
    start = TEST_START - 4 * 60.0
    assert (robust.arrivals(start, 16, 15.0) > mean.arrivals(start, 16, 15.0)).all()
    with pytest.raises(ValueError, match="period_min = 60.0: allowed: 15.0"):
        mean.arrivals(start, 4, 60.0)


def test_lstm_needs_its_extra_and_names_it(monkeypatch):
    monkeypatch.delitem(sys.modules, "agentev.forecasting.lstm", raising=False)
    monkeypatch.setitem(sys.modules, "jax", None)  # as if not installed
    with pytest.raises(ImportError, match=r"pip install 'agentev\[lstm\]'"):
        learner("lstm")


def test_importing_agentev_imports_no_learner():
    code = (
        "import sys, agentev, agentev.forecasting; "
        "print(sorted(m for m in ('jax', 'mapie', 'sklearn.ensemble', "
        "'sklearn.gaussian_process') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ----------------------------------------------------------------------------- CSV logs
def test_agentevs_own_tasks_csv_loads_as_a_task_log(tmp_path):
    model = FactoryModel("light", strategy="fcfs", rng=2, duration_h=6)
    model.run()
    path = tmp_path / "tasks.csv"
    model.recorder.tasks().to_csv(path, index=False)
    log = load_task_log(path)
    direct = task_log_from_model(model)
    np.testing.assert_allclose(log.release_min, direct.release_min)
    np.testing.assert_allclose(log.pickup_min, direct.pickup_min)
    assert log.start_min == 0.0 and log.energy_kwh_per_min is None
    starts = np.arange(0.0, 300.0, 15.0)
    np.testing.assert_allclose(
        period_values(log, "busy_vehicles", starts, 15.0),
        period_values(direct, "busy_vehicles", starts, 15.0),
    )


def test_iso_timestamps_with_energy(tmp_path):
    path = tmp_path / "plant.csv"
    path.write_text(
        "release_time,pickup_time,delivery_time,energy_kwh\n"
        "2026-03-02T06:00:00,2026-03-02T06:05:00,2026-03-02T06:15:00,0.5\n"
        "2026-03-02T06:10:00,2026-03-02T06:20:00,,\n"
        "2026-03-03T07:30:00,,,\n"
    )
    log = load_task_log(path)
    assert log.weekday_of_day0 == 0  # 2 March 2026 is a Monday
    np.testing.assert_allclose(log.release_min, [360.0, 370.0, 1440.0 + 450.0])
    # 0.5 kWh spread over 06:05-06:15: 0.05 kWh in each of those minutes
    assert log.energy_kwh_per_min.sum() == pytest.approx(0.5)
    assert log.energy_kwh_per_min[365] == pytest.approx(0.05)
    assert period_values(log, "energy_kwh", np.array([360.0]), 15.0)[0] == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("id,when\n1,5\n", "column release_min or release_time missing"),
        ("release_min\n3\nabc\n", "line 3: release_min = 'abc': allowed: a number of minutes"),
        ("release_min,pickup_min\n10,4\n", "line 2: pickup_min (4 min) is before the release"),
        (
            "release_min,pickup_min,delivery_min\n1,5,3\n",
            "line 2: delivery_min (3 min) needs a pick-up at or before it",
        ),
        (
            "release_min,pickup_min,delivery_min,energy_kwh\n1,2,3,-1\n",
            "line 2: energy_kwh = -1: allowed: 0 or more",
        ),
        ("release_min,pickup_time\n1,2026-01-01T00:00\n", "one kind of time per file"),
        (
            "release_time\n2026-03-02T06:00:00+01:00\n",
            "has a UTC offset: pass timezone=",
        ),
        ("release_time\nyesterday\n", "release_time = 'yesterday': allowed: an ISO 8601"),
    ],
)
def test_bad_csv_input_names_line_column_value_and_what_is_allowed(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(TaskLogError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_task_log(path)


def test_a_plant_log_trains_a_running_models_forecaster(tmp_path):
    history = simulate_history(load_scenario("light"), 3, seed=5).shifted(3 * 1440.0 + 2880.0)
    path = tmp_path / "plant.csv"
    path.write_text(
        "release_min,pickup_min,delivery_min\n"
        + "".join(
            f"{r},{'' if np.isnan(p) else p},{'' if np.isnan(d) else d}\n"
            for r, p, d in zip(
                history.release_min, history.pickup_min, history.delivery_min, strict=True
            )
        )
    )
    # by default the log ends just after its last time: before midnight
    assert 2880.0 + 2 * 1440.0 < load_task_log(path).end_min < 2880.0 + 3 * 1440.0
    log = load_task_log(path, end_min=2880.0 + 3 * 1440.0, weekday_of_day0=2)
    assert (log.start_min, log.end_min) == (2880.0, 2880.0 + 3 * 1440.0)
    # a log ending inside a day is extended to midnight with no tasks
    short = load_task_log(path).as_warm_up()
    assert short.end_min == 0.0 and short.num_tasks == log.num_tasks
    warm = log.as_warm_up()
    assert warm.end_min == 0.0 and warm.start_min == -3 * 1440.0
    assert warm.weekday_of_day0 == (2 + 5) % 7  # minute 0 is the old day 5
    model = FactoryModel("light", strategy="fcfs", rng=3)
    model.run_until(120)
    naive = make_forecaster("naive", model, history=log)
    assert naive.history.end_min == 0.0
    np.testing.assert_allclose(
        naive.arrivals(120.0, 4, 15.0),
        period_values(warm, "tasks", 120.0 - 1440.0 + 15.0 * np.arange(4), 15.0),
    )
