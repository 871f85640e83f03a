"""Charging quality over paired seeds, against the lower bound, the hindsight plan and fcfs.

For each scenario and seed (common random numbers: every strategy sees the same tasks), runs
the chosen strategies (default ``fcfs``, ``negotiation``, ``intelligent``, ``hindsight``),
solves the scenario's lower bound of the weighted objective and each run's cheapest bill
(:mod:`agentev.optimization.bound`), and prints per strategy, with paired 95 % confidence
intervals over the seeds:

* ``J`` (weighted objective), its gap to the lower bound :math:`(J - J_{lb}) / J_{lb}` and to
  the hindsight plan;
* the bill (``energy_cost_adjusted + demand_charge``, per day), fcfs's possible saving (its
  bill minus its cheapest bill, per day) and the share of it the strategy captures;
* completed tasks, service shortfall and SoC violations.

Then issue 16's targets for ``intelligent``: at least 60 % of the possible saving captured,
at least 99 % of fcfs's completed tasks in every seed, no SoC violation. And the share of
fcfs's bill that charging can move at all (the bill minus the base load's demand charge).

Usage: ``python benchmarks/bench_quality.py [--scenarios light,heavy,flexible,continuous,heavy-tou]
[--seeds 30] [--strategies fcfs,negotiation,intelligent,hindsight] [--workers 2]``; the
strategies may include the breakdown variants ``intelligent-perfect``, ``intelligent-24h`` and
``intelligent-energy``.
"""

from __future__ import annotations

import argparse
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from scipy import stats

from agentev import FactoryModel
from agentev.metrics import References
from agentev.optimization.bound import lower_bound
from agentev.outputs import model_metrics

STRATEGIES = ("fcfs", "negotiation", "intelligent", "hindsight")
#: The gap's breakdown: ``intelligent`` with the perfect forecaster, with a 24 h horizon, and
#: with the energy cost as its only objective (does the service weight stop the saving?).
VARIANTS = {
    "intelligent-perfect": {"strategy": "intelligent", "forecaster": "perfect"},
    "intelligent-24h": {"strategy": "intelligent", "prediction_horizon_h": 24.0},
    "intelligent-energy": {
        "strategy": "intelligent",
        "alpha_energy": 1.0,
        "alpha_downtime": 0.0,
        "alpha_utilization": 0.0,
    },
}
KEEP = (
    "weighted_objective",
    "energy_cost_adjusted",
    "demand_charge",
    "cheapest_bill",
    "lower_bound_objective",
    "base_load_demand_charge",
    "tasks_completed",
    "service_shortfall_vehicle_h",
    "soc_violations",
)


def run(job: tuple[str, str, int]) -> dict[str, float]:
    """Metric values of one run ``(scenario, strategy, seed)``, with its references."""
    scenario, strategy, seed = job
    keywords = VARIANTS.get(strategy, {"strategy": strategy})
    model = FactoryModel(scenario=scenario, rng=seed, **keywords)
    model.run()
    refs = References(lower_bound_objective=lower_bound(model).objective)
    values = {k: m.value for k, m in model_metrics(model, refs, cheapest=True).items()}
    out = {k: values[k] for k in KEEP}
    out["bill"] = values["energy_cost_adjusted"] + values["demand_charge"]
    out["days"] = model.duration_min / 1440.0
    return out


def ci95(x: np.ndarray) -> tuple[float, float, float]:
    """Mean and 95 % t confidence interval."""
    x = np.asarray(x, dtype=float)
    x = x[~np.isnan(x)]
    mean = float(np.mean(x)) if len(x) else float("nan")
    if len(x) < 2:
        return mean, float("nan"), float("nan")
    half = float(stats.t.ppf(0.975, len(x) - 1) * stats.sem(x))
    return mean, mean - half, mean + half


def fmt(x: np.ndarray, scale: float = 1.0, pct: bool = False) -> str:
    """``mean [low, high]``."""
    m, lo, hi = (v * scale for v in ci95(x))
    if pct:
        return f"{m:+.1%} [{lo:+.1%}, {hi:+.1%}]"
    return f"{m:.3f} [{lo:.3f}, {hi:.3f}]"


def main() -> None:
    """Run the paired comparison and print its tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", default="light,heavy,flexible,continuous,heavy-tou")
    parser.add_argument("--seeds", type=int, default=30)
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    strategies = args.strategies.split(",")
    if "fcfs" not in strategies:
        strategies.insert(0, "fcfs")
    for scenario in args.scenarios.split(","):
        jobs = [(scenario, s, seed) for s in strategies for seed in range(args.seeds)]
        with ProcessPoolExecutor(args.workers) as pool:
            flat = list(pool.map(run, jobs))
        n = args.seeds
        res = {
            s: {k: np.array([r[k] for r in flat[i * n : (i + 1) * n]]) for k in flat[0]}
            for i, s in enumerate(strategies)
        }
        report(scenario, n, res)


def report(scenario: str, n: int, res: dict[str, dict[str, np.ndarray]]) -> None:
    """Print one scenario's table and issue 16's targets."""
    fcfs = res["fcfs"]
    days = fcfs["days"]
    possible = np.maximum(fcfs["bill"] - fcfs["cheapest_bill"], 0.0)
    hindsight = res.get("hindsight")
    print(f"\n{scenario}: {n} paired seeds; means with 95 % CIs")
    print(
        f"  fcfs's bill {fmt(fcfs['bill'] / days)} USD/day, possible saving "
        f"{fmt(possible / days)} USD/day ({fmt(possible / fcfs['bill'], pct=True)} of the bill); "
        f"charging can move {fmt(1 - fcfs['base_load_demand_charge'] / fcfs['bill'], pct=True)}"
        " of it at all (the rest is the base load's demand charge)"
    )
    print(f"  lower bound J_lb {fmt(fcfs['lower_bound_objective'])}")
    head = (
        f"  {'strategy':<20} {'J':>22} {'gap to J_lb':>24} {'gap to hindsight':>24} "
        f"{'bill USD/day':>22} {'captured':>24} {'tasks':>8} {'shortfall':>9} {'viol':>5}"
    )
    print(head)
    for s, r in res.items():
        j, lb = r["weighted_objective"], r["lower_bound_objective"]
        ref = hindsight["weighted_objective"] if hindsight is not None else np.nan
        gap_h = (j - ref) / ref
        captured = (fcfs["bill"] - r["bill"]) / np.where(possible > 0, possible, np.nan)
        print(
            f"  {s:<20} {fmt(j):>22} {fmt((j - lb) / lb, pct=True):>24} "
            f"{fmt(gap_h, pct=True) if hindsight is not None else 'n/a':>24} "
            f"{fmt(r['bill'] / days):>22} {fmt(captured, pct=True):>24} "
            f"{r['tasks_completed'].mean():>8.1f} {r['service_shortfall_vehicle_h'].mean():>9.2f} "
            f"{r['soc_violations'].sum():>5.0f}"
        )
        assert (j >= lb - 1e-9).all(), f"{s}: a run below the lower bound"
    if "intelligent" in res:
        r = res["intelligent"]
        captured = (fcfs["bill"] - r["bill"]) / np.where(possible > 0, possible, np.nan)
        m, lo, hi = ci95(captured)
        tasks_ok = bool((r["tasks_completed"] >= 0.99 * fcfs["tasks_completed"]).all())
        print(
            f"  intelligent: captured {m:.1%} [{lo:.1%}, {hi:.1%}] (target >= 60 %: "
            f"{'met' if m >= 0.6 else 'NOT met'}); tasks >= 99 % of fcfs in every seed: "
            f"{'met' if tasks_ok else 'NOT met'}; SoC violations {r['soc_violations'].sum():.0f}"
        )
        own_gap = (r["bill"] - r["cheapest_bill"]) / days
        print(
            f"  intelligent's bill above its own cheapest bill: {fmt(own_gap)} USD/day; "
            f"its demand charge {fmt(r['demand_charge'] / days)} against fcfs's "
            f"{fmt(fcfs['demand_charge'] / days)} USD/day, the base load's alone "
            f"{fmt(r['base_load_demand_charge'] / days)} USD/day"
        )


if __name__ == "__main__":
    main()
