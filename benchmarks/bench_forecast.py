"""What forecasts are worth to the controller: an ablation over forecasters.

Runs ``intelligent`` with each forecaster (default ``none``, ``naive``, ``random_forest``,
``gaussian_process``, ``ensemble``, ``lstm``, ``perfect``, and the default ``rate`` for
reference) on paired seeds (every forecaster sees the same tasks) and prints per scenario,
with 95 % confidence intervals over the seeds: the weighted objective J, the energy cost
(``energy_cost_adjusted``, USD/day), completed tasks, service shortfall, SoC violations, the
forecaster's fit time (s, warm-up history included), and J's paired difference to
``perfect``. Then the gap between ``perfect`` and the best learned forecaster, the number to
shrink.

Usage: ``python benchmarks/bench_forecast.py [--scenarios heavy,flexible] [--seeds 30]
[--forecasters none,naive,...] [--workers 2] [--quantile Q] [--raw runs.csv]``; ``lstm``
needs ``pip install -e '.[lstm]'``. ``--raw`` keeps every run's figures (one row per scenario,
forecaster and seed), written after each scenario; ``--from-raw runs.csv`` prints the tables
of such a file again without running anything.
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pandas as pd
from bench_quality import ci95, fmt

from agentev import FactoryModel
from agentev.forecasting import LEARNER_NAMES
from agentev.outputs import model_metrics

FORECASTERS = (
    "none",
    "rate",
    "naive",
    "random_forest",
    "gaussian_process",
    "ensemble",
    "lstm",
    "perfect",
)


def run(job: tuple[str, str, int, float | None]) -> dict[str, float]:
    """Metrics of one ``intelligent`` run ``(scenario, forecaster, seed, quantile)``."""
    scenario, forecaster, seed, quantile = job
    start = time.perf_counter()
    model = FactoryModel(
        scenario=scenario,
        rng=seed,
        strategy="intelligent",
        forecaster=forecaster,
        forecast_quantile=quantile,
    )
    fit_s = time.perf_counter() - start
    model.run()
    m = model_metrics(model)
    days = model.duration_min / 1440.0
    return {
        "J": m["weighted_objective"].value,
        "energy_cost": m["energy_cost_adjusted"].value / days,
        "tasks": m["tasks_completed"].value,
        "shortfall": m["service_shortfall_vehicle_h"].value,
        "violations": m["soc_violations"].value,
        "fit_s": fit_s,
        "run_s": time.perf_counter() - start - fit_s,
    }


def main() -> None:
    """Run the ablation and print its tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", default="heavy,flexible")
    parser.add_argument("--seeds", type=int, default=30)
    parser.add_argument("--forecasters", default=",".join(FORECASTERS))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--quantile", type=float, default=None, help="robust planning")
    parser.add_argument("--raw", default=None, help="CSV of every run's figures")
    parser.add_argument(
        "--from-raw", default=None, help="print the tables of a --raw CSV, run nothing"
    )
    args = parser.parse_args()
    names = args.forecasters.split(",")
    if args.from_raw:
        frame = pd.read_csv(args.from_raw)
        for scenario, runs in frame.groupby("scenario", sort=False):
            runs = runs.sort_values(["forecaster", "seed"])
            present = [f for f in names if f in set(runs["forecaster"])]
            res = {
                f: {
                    k: runs.loc[runs["forecaster"] == f, k].to_numpy()
                    for k in runs.columns
                    if k not in ("scenario", "forecaster", "seed")
                }
                for f in present
            }
            report(scenario, runs["seed"].nunique(), res, args.quantile)
        return
    rows: list[dict] = []
    for scenario in args.scenarios.split(","):
        jobs = [(scenario, f, s, args.quantile) for f in names for s in range(args.seeds)]
        with ProcessPoolExecutor(args.workers) as pool:
            flat = list(pool.map(run, jobs))
        rows += [
            {"scenario": j[0], "forecaster": j[1], "seed": j[2], **r}
            for j, r in zip(jobs, flat, strict=True)
        ]
        if args.raw:
            pd.DataFrame(rows).to_csv(args.raw, index=False)
        n = args.seeds
        res = {
            f: {k: np.array([r[k] for r in flat[i * n : (i + 1) * n]]) for k in flat[0]}
            for i, f in enumerate(names)
        }
        report(scenario, n, res, args.quantile)


def report(scenario: str, n: int, res: dict[str, dict[str, np.ndarray]], q) -> None:
    """Print one scenario's ablation table."""
    plan = "mean" if q is None else f"upper {q:g} quantile"
    print(f"\n{scenario}: intelligent, {n} paired seeds, planning on the forecast's {plan}")
    print(
        f"  {'forecaster':<17} {'J':>22} {'energy cost USD/day':>24} {'tasks':>28} "
        f"{'shortfall veh-h':>24} {'viol':>5} {'fit s':>6} {'J - J(perfect)':>24}"
    )
    perfect = res.get("perfect")
    for f, r in res.items():
        diff = fmt(r["J"] - perfect["J"]) if perfect is not None else "n/a"
        m, lo, hi = ci95(r["tasks"])
        print(
            f"  {f:<17} {fmt(r['J']):>22} {fmt(r['energy_cost']):>24} "
            f"{f'{m:.1f} [{lo:.1f}, {hi:.1f}]':>28} {fmt(r['shortfall']):>24} "
            f"{r['violations'].sum():>5.0f} {r['fit_s'].mean():>6.1f} {diff:>24}"
        )
    learned = [f for f in res if f in LEARNER_NAMES]
    if perfect is not None and learned:
        best = min(learned, key=lambda f: res[f]["J"].mean())
        m, lo, hi = ci95((res[best]["J"] - perfect["J"]) / perfect["J"])
        print(
            f"  best learned: {best}; its J above perfect's by {m:+.1%} [{lo:+.1%}, {hi:+.1%}] "
            "(the gap to shrink)"
        )


if __name__ == "__main__":
    main()
