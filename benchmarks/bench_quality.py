"""Charging quality over paired seeds: every strategy against fcfs (and the oracle).

For each scenario and seed (common random numbers: every strategy sees the same tasks), runs
the chosen strategies (default ``fcfs``, ``negotiation``, ``intelligent``, ``oracle``) and
prints per strategy the means of energy cost, demand charge, completed tasks, service
shortfall, weighted objective, gap to the oracle, charger wait and tardiness. Then, with 95 %
confidence intervals of the paired differences:

* issue 4: ``negotiation`` against ``fcfs`` on mean charger wait and tardiness (target: one
  of them lower with the CI excluding zero) and completed tasks (no fewer);
* issue 3: ``intelligent`` against ``fcfs``: zero SoC violations, at least 98 % of fcfs's
  completed tasks in every seed, ``energy_cost_adjusted + demand_charge`` at least 10 % below
  fcfs (CI excluding zero), gap to the oracle under 5 %.

Usage: ``python benchmarks/bench_quality.py [--scenarios light,heavy] [--seeds 30]
[--strategies fcfs,negotiation,intelligent,oracle] [--workers 2]``; the strategies may include the
breakdown variants ``intelligent-perfect`` and ``intelligent-24h`` (the oracle solves a
whole-day plan per seed, about 4 s on light and 8 s on heavy; leave it out with
``--strategies fcfs,intelligent``).
"""

from __future__ import annotations

import argparse
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from scipy import stats

from agentev import FactoryModel
from agentev.outputs import model_metrics

STRATEGIES = ("fcfs", "negotiation", "intelligent", "oracle")
#: The gap's breakdown: ``intelligent`` with the perfect forecaster, and with a 24 h horizon.
VARIANTS = {
    "intelligent-perfect": {"strategy": "intelligent", "forecaster": "perfect"},
    "intelligent-24h": {"strategy": "intelligent", "prediction_horizon_h": 24.0},
}
COLUMNS = (
    "energy_cost_adjusted",
    "demand_charge",
    "tasks_completed",
    "service_shortfall_vehicle_h",
    "soc_violations",
    "weighted_objective",
    "charger_wait_mean_min",
    "tardiness_mean_min",
)


def run(job: tuple[str, str, int]) -> dict[str, float]:
    """Metric values of one run ``(scenario, strategy, seed)``."""
    scenario, strategy, seed = job
    keywords = VARIANTS.get(strategy, {"strategy": strategy})
    model = FactoryModel(scenario=scenario, rng=seed, **keywords)
    model.run()
    return {k: m.value for k, m in model_metrics(model).items()}


def ci95(x: np.ndarray) -> tuple[float, float, float]:
    """Mean and 95 % t confidence interval."""
    mean = float(np.mean(x))
    if len(x) < 2:
        return mean, float("nan"), float("nan")
    half = float(stats.t.ppf(0.975, len(x) - 1) * stats.sem(x))
    return mean, mean - half, mean + half


def main() -> None:
    """Run the paired comparison and print its tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", default="light,heavy")
    parser.add_argument("--seeds", type=int, default=30)
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    strategies = args.strategies.split(",")
    for scenario in args.scenarios.split(","):
        jobs = [(scenario, s, seed) for s in strategies for seed in range(args.seeds)]
        with ProcessPoolExecutor(args.workers) as pool:
            flat = list(pool.map(run, jobs))
        results = {s: flat[i * args.seeds : (i + 1) * args.seeds] for i, s in enumerate(strategies)}
        has_oracle = "oracle" in results
        oracle_j = (
            np.array([r["weighted_objective"] for r in results["oracle"]]) if has_oracle else None
        )
        print(f"\n{scenario}: {args.seeds} paired seeds")
        print(
            f"{'strategy':<12} {'energy adj':>10} {'demand':>8} {'tasks':>7} {'shortfall':>9} "
            f"{'J':>7} {'gap':>7} {'wait min':>8} {'tardy min':>9}"
        )
        cost = {}
        for s in strategies:
            rows = results[s]
            col = {c: np.array([r[c] for r in rows]) for c in COLUMNS}
            cost[s] = col["energy_cost_adjusted"] + col["demand_charge"]
            gap = (col["weighted_objective"] - oracle_j) / oracle_j if has_oracle else np.nan
            print(
                f"{s:<12} {col['energy_cost_adjusted'].mean():>10.3f} "
                f"{col['demand_charge'].mean():>8.3f} {col['tasks_completed'].mean():>7.1f} "
                f"{col['service_shortfall_vehicle_h'].mean():>9.2f} "
                f"{col['weighted_objective'].mean():>7.3f} {np.mean(gap):>7.1%} "
                f"{col['charger_wait_mean_min'].mean():>8.2f} "
                f"{col['tardiness_mean_min'].mean():>9.2f}"
            )
        if "negotiation" in results and "fcfs" in results:
            negotiation_vs_fcfs(results["negotiation"], results["fcfs"])
        if "intelligent" in results and "fcfs" in results:
            intelligent_vs_fcfs(results, cost, oracle_j)


def paired(a: list[dict], b: list[dict], name: str) -> np.ndarray:
    """Per-seed differences ``a - b`` of one metric."""
    return np.array([r[name] for r in a]) - np.array([r[name] for r in b])


def negotiation_vs_fcfs(neg: list[dict], fcfs: list[dict]) -> None:
    """Issue 4's target: lower mean charger wait or tardiness (CI excluding 0), no fewer tasks."""
    met = []
    for name in ("charger_wait_mean_min", "tardiness_mean_min"):
        mean, lo, hi = ci95(paired(neg, fcfs, name))
        met.append(hi < 0)
        print(f"negotiation vs fcfs, {name}: {mean:+.2f} [{lo:+.2f}, {hi:+.2f}]")
    tasks = paired(neg, fcfs, "tasks_completed")
    tm, tlo, thi = ci95(tasks)
    print(f"  tasks completed, negotiation - fcfs: {tm:+.1f} [{tlo:+.1f}, {thi:+.1f}]")
    print(
        f"  target: wait or tardiness lower with CI excluding 0: "
        f"{'met' if any(met) else 'NOT met'}; no fewer tasks (mean): "
        f"{'met' if tm >= 0 else 'NOT met'} (fewer in {int((tasks < 0).sum())} seeds)"
    )


def intelligent_vs_fcfs(results: dict, cost: dict, oracle_j: np.ndarray | None) -> None:
    """Issue 3's targets for ``intelligent`` against ``fcfs`` (and the oracle)."""
    has_oracle = oracle_j is not None
    rel = (cost["intelligent"] - cost["fcfs"]) / cost["fcfs"]
    mean, lo, hi = ci95(rel)
    tasks_i = np.array([r["tasks_completed"] for r in results["intelligent"]])
    tasks_f = np.array([r["tasks_completed"] for r in results["fcfs"]])
    j_i = np.array([r["weighted_objective"] for r in results["intelligent"]])
    j_f = np.array([r["weighted_objective"] for r in results["fcfs"]])
    violations = sum(r["soc_violations"] for r in results["intelligent"])
    print(f"intelligent vs fcfs, energy adj + demand: {mean:+.1%} [{lo:+.1%}, {hi:+.1%}]")
    cost_met = hi < 0 and mean <= -0.10
    tasks_met = bool((tasks_i >= 0.98 * tasks_f).all())
    print(f"  target <= -10 % with CI excluding 0: {'met' if cost_met else 'NOT met'}")
    print(f"  tasks >= 98 % of fcfs in every seed: {'met' if tasks_met else 'NOT met'}")
    print(f"  soc violations: {violations:.0f} (target 0)")
    jm, jlo, jhi = ci95(j_i - j_f)
    print(f"  weighted objective, intelligent - fcfs: {jm:+.3f} [{jlo:+.3f}, {jhi:+.3f}]")
    if has_oracle:
        gmean, glo, ghi = ci95((j_i - oracle_j) / oracle_j)
        print(f"  gap to oracle: {gmean:+.1%} [{glo:+.1%}, {ghi:+.1%}] (target < 5 %)")


if __name__ == "__main__":
    main()
