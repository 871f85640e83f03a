"""Forecast evaluation on held-out days.

MAE and RMSE against the seasonal-naive baseline, and the empirical coverage of prediction
intervals.

The learners are fitted on the log before ``test_start_min`` and forecast the horizon from
origins in the held-out days (every ``origin_step_min``, the controller's re-plan interval);
each (origin, lead) row is scored against what happened. Features read only the log before
their origin, so the held-out targets are never seen.

Run it (prints a table)::

    python -m agentev.forecasting.evaluation --scenario light --train-days 7 --test-days 3
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from agentev.forecasting.features import (
    QUANTITIES,
    FeatureSpec,
    feature_rows,
    period_values,
    training_frame,
)
from agentev.forecasting.history import TaskLog
from agentev.forecasting.models import Forecaster
from agentev.forecasting.registry import learner


@dataclass(frozen=True)
class Score:
    """How one forecaster did on one quantity over the held-out rows.

    Attributes:
        forecaster: Its name.
        quantity: The quantity forecast.
        mae: Mean absolute error (the quantity's unit).
        rmse: Root mean squared error (the quantity's unit).
        mae_vs_naive: mae / the seasonal-naive baseline's mae (below 1: better).
        rmse_vs_naive: rmse / the baseline's rmse.
        coverage: Share of held-out values inside the central interval.
        confidence: The interval's nominal confidence.
        fit_s: Time to fit, conformal calibration included (s).
        rows: Held-out (origin, lead) rows.
    """

    forecaster: str
    quantity: str
    mae: float
    rmse: float
    mae_vs_naive: float
    rmse_vs_naive: float
    coverage: float
    confidence: float
    fit_s: float
    rows: int


def held_out_rows(
    log: TaskLog,
    quantity: str,
    spec: FeatureSpec,
    test_start_min: float,
    origin_step_min: float = 60.0,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Feature rows and actual values of the forecasts made from ``test_start_min`` on."""
    last = log.end_min - spec.horizon_periods * spec.period_min
    origins = np.arange(test_start_min, last + 1e-9, origin_step_min)
    if not len(origins):
        raise ValueError(
            f"test_start_min = {test_start_min}: allowed: at least one horizon "
            f"({spec.horizon_periods * spec.period_min:g} min) before the log's end"
        )
    x = feature_rows(log, quantity, spec, origins)
    starts = np.repeat(origins, spec.horizon_periods) + (x["lead"].to_numpy() - 1) * spec.period_min
    return x, period_values(log, quantity, starts, spec.period_min)


def interval_coverage(
    forecaster: Forecaster,
    X: pd.DataFrame,  # noqa: N803
    y: np.ndarray,
    confidence: float = 0.9,
) -> float:
    """Share of ``y`` inside the forecaster's central ``confidence`` intervals."""
    low, high = forecaster.predict_interval(X, confidence)
    return float(np.mean((y >= low) & (y <= high)))


def evaluate(
    log: TaskLog,
    test_start_min: float,
    spec: FeatureSpec,
    *,
    names: Sequence[str] = ("naive", "random_forest", "gaussian_process", "ensemble"),
    quantities: Sequence[str] = ("tasks",),
    confidence: float = 0.9,
    origin_step_min: float = 60.0,
    rng: np.random.Generator | None = None,
) -> list[Score]:
    """Fit each named forecaster on the log before ``test_start_min`` and score it after.

    Args:
        log: History covering the training and the held-out days.
        test_start_min: First origin of the held-out part (minutes).
        spec: Features.
        names: Learned forecasters (``naive`` is always scored: the baseline).
        quantities: Quantities to score.
        confidence: Nominal confidence of the intervals scored.
        origin_step_min: Minutes between held-out forecast origins.
        rng: Source of the learners' seeds (default: seed 0).
    """
    rng = np.random.default_rng(0) if rng is None else rng
    train = log.until(test_start_min)
    names = ["naive", *[n for n in names if n != "naive"]]
    scores = []
    for q in quantities:
        x, y, starts = training_frame(train, q, spec)
        xt, yt = held_out_rows(log, q, spec, test_start_min, origin_step_min)
        base = None
        for name in names:
            model = learner(name, random_state=int(rng.integers(2**31)))
            t0 = time.perf_counter()
            model.fit(x, y, target_start_min=starts)
            fit_s = time.perf_counter() - t0
            err = np.maximum(model.predict(xt), 0.0) - yt
            mae, rmse = float(np.mean(np.abs(err))), float(np.sqrt(np.mean(err**2)))
            if base is None:
                base = (mae, rmse)
            scores.append(
                Score(
                    name,
                    q,
                    mae,
                    rmse,
                    mae / base[0] if base[0] else float("nan"),
                    rmse / base[1] if base[1] else float("nan"),
                    interval_coverage(model, xt, yt, confidence),
                    confidence,
                    fit_s,
                    len(yt),
                )
            )
    return scores


def scores_frame(scores: Sequence[Score]) -> pd.DataFrame:
    """The scores as a table."""
    return pd.DataFrame([asdict(s) for s in scores])


def main(argv: Sequence[str] | None = None) -> None:
    """Simulate a scenario's history and print the held-out scores."""
    from agentev.forecasting.history import simulate_history
    from agentev.forecasting.registry import LEARNER_NAMES, default_spec, forecast_rng
    from agentev.scenario import load_scenario

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scenario", default="light")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--train-days", type=int, default=7)
    p.add_argument("--test-days", type=int, default=3)
    p.add_argument("--forecasters", default="naive,random_forest,gaussian_process,ensemble")
    p.add_argument("--quantities", default=",".join(QUANTITIES))
    args = p.parse_args(argv)
    names = args.forecasters.split(",")
    for n in names:
        if n not in LEARNER_NAMES:
            p.error(f"--forecasters: {n!r}: allowed: {', '.join(LEARNER_NAMES)}")
    cfg = load_scenario(args.scenario)
    days = args.train_days + args.test_days
    log = simulate_history(cfg, days, seed=args.seed)
    spec = default_spec(cfg, log.until(-1440.0 * args.test_days))
    scores = evaluate(
        log,
        -1440.0 * args.test_days,
        spec,
        names=names,
        quantities=args.quantities.split(","),
        rng=forecast_rng(args.seed),
    )
    with pd.option_context("display.width", 160, "display.precision", 3):
        print(
            f"{args.scenario}, seed {args.seed}: {args.train_days} training days, "
            f"{args.test_days} held-out days, forecasts every hour over "
            f"{spec.horizon_periods} x {spec.period_min:g} min"
        )
        print(scores_frame(scores).to_string(index=False))


if __name__ == "__main__":
    main()
