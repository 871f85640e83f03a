"""Campaign throughput: runs per minute and the share of time spent in optimisation.

Runs an experiment campaign with :class:`agentev.ExperimentalFramework` (default: the whole
default campaign, 4 scenarios x every strategy x 30 replications; the hindsight plan's
whole-run MILP is solved once per scenario and seed and cached) in a fresh output
directory, then prints from its ``timing.csv``:

* the campaign's wall time, runs and reports (``generate_reports``) included, and the runs
  per minute (target: the default campaign in under 20 minutes on a 2-core machine);
* per scenario and strategy: runs, mean wall seconds per run, per simulated minute (ms), and
  the share of the run's time spent in the controller's solves;
* with ``--replications`` below 30, the projected wall time of 30 replications (the same
  per-run cost, the same number of workers).

The hindsight plans' and lower bounds' cache starts empty (a temporary
``$AGENTEV_CACHE_DIR``), so every hindsight plan is solved in the measured time;
``--keep-cache`` uses the usual cache instead (a rerun of a campaign whose plans are cached).

Usage: ``python benchmarks/bench_campaign.py [--replications 30] [--scenarios ...]
[--strategies ...] [--workers 2] [--simulation-time H] [--output-dir DIR] [--keep-cache]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import pandas as pd

from agentev import ExperimentalFramework, load_scenario
from agentev.experiments.framework import DEFAULT_SCENARIOS, DEFAULT_STRATEGIES, format_duration

TARGET_MIN = 20.0
FULL_REPLICATIONS = 30


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replications", type=int, default=FULL_REPLICATIONS)
    parser.add_argument("--scenarios", default=",".join(DEFAULT_SCENARIOS))
    parser.add_argument("--strategies", default=",".join(DEFAULT_STRATEGIES))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--simulation-time", type=float, default=None)
    parser.add_argument("--output-dir", default=None, help="default: a temporary directory")
    parser.add_argument(
        "--keep-cache",
        action="store_true",
        help="use the cached plans and bounds (default: none)",
    )
    args = parser.parse_args()
    if not args.keep_cache:  # the workers inherit it: every hindsight plan is solved and timed
        os.environ["AGENTEV_CACHE_DIR"] = tempfile.mkdtemp(prefix="agentev-cache-")
    out = Path(args.output_dir or tempfile.mkdtemp(prefix="agentev-campaign-"))
    if args.output_dir is None:
        shutil.rmtree(out)
    scenarios = args.scenarios.split(",")
    framework = ExperimentalFramework(output_dir=out, workers=args.workers)
    start = time.perf_counter()
    framework.run_comprehensive_experiments(
        num_replications=args.replications,
        scenarios=scenarios,
        strategies=args.strategies.split(","),
        simulation_time=args.simulation_time,
    )
    runs_wall = time.perf_counter() - start
    framework.generate_reports()  # part of the campaign: `agentev experiments` writes them
    wall = time.perf_counter() - start
    timing = pd.read_csv(out / "timing.csv")
    minutes = {s: (args.simulation_time or load_scenario(s).duration_h) * 60.0 for s in scenarios}
    timing["sim_min"] = timing["scenario"].map(minutes)
    n = len(timing)
    print(
        f"\n{n} runs on {args.workers} workers in {format_duration(runs_wall)}, "
        f"then the reports in {format_duration(wall - runs_wall)}: "
        f"{n / runs_wall * 60.0:.2f} runs/min; time in optimisation (controller solves): "
        f"{timing.solver_s.sum() / timing.wall_s.sum():.1%} of run time"
    )
    table = timing.groupby(["scenario", "strategy"], sort=False).agg(
        runs=("wall_s", "size"),
        wall_s_mean=("wall_s", "mean"),
        solver_s_mean=("solver_s", "mean"),
        sim_min=("sim_min", "first"),
    )
    table["ms_per_sim_min"] = table.wall_s_mean / table.sim_min * 1000.0
    table["solver_share"] = table.solver_s_mean / table.wall_s_mean
    with pd.option_context("display.width", 140, "display.float_format", "{:.3f}".format):
        print(table.drop(columns="sim_min").to_string())
    if args.replications < FULL_REPLICATIONS:
        scale = FULL_REPLICATIONS / args.replications
        projected = timing.wall_s.sum() * scale / args.workers
        print(
            f"\nprojected for {FULL_REPLICATIONS} replications: about "
            f"{format_duration(projected)} of run time on {args.workers} workers, plus the "
            f"reports "
            f"(target: under {TARGET_MIN:.0f} min)"
        )
    else:
        verdict = "met" if wall / 60.0 < TARGET_MIN else "NOT met"
        print(
            f"\nwhole campaign, reports included, {format_duration(wall)}: target (under "
            f"{TARGET_MIN:.0f} min) {verdict}"
        )
    print(f"outputs: {out}")


if __name__ == "__main__":
    main()
