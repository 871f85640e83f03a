"""Charging planner speed.

Prints, for fleets of 10, 50, 200 and 500 vehicles (ports = fleet / 5, 16 periods of 15 min),
the model build and update times and the per-re-plan time (median, p95) over ``--replans``
re-plans with
shifted prices and states of charge, for HiGHS (persistent) and GLPK (legacy interface; only
up to ``--glpk-max`` vehicles), and the wall time of a 24 h light-scenario day under
``intelligent`` (15-min periods, 4 h horizon) for several seeds: a seed whose vehicles fall
below their safety margin re-plans up to twice as often.

Targets (issue 3): p95 under 200 ms at 10 vehicles; median under 10 s at 500 vehicles;
a light day with ``intelligent`` under 5 s.

The per-vehicle planner is measured as the controller uses it: the first hour in
quarter-hours, then three hour-long periods (move blocking, ``--tail-min``; 0: sixteen
quarter-hours); the hierarchical planner (from 60 vehicles) always has sixteen. With
``--compare-tail`` the light day also runs with sixteen quarter-hours, and the ratio of the
two wall times and of the two weighted objectives is printed.

Usage: ``python benchmarks/bench_planner.py [--sizes 10,50] [--replans 5] [--glpk-max 50]
[--day-seeds 1,2,3,4,5] [--no-day] [--tail-min 60] [--compare-tail]``
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np

from agentev import FactoryModel, load_scenario
from agentev.optimization.hierarchical import HIERARCHICAL_MIN_VEHICLES, make_planner
from agentev.optimization.planner import (
    PlanCharger,
    PlanDemandCharge,
    PlanInput,
    PlanVehicle,
    block_periods,
    coarse_tail_lengths,
)
from agentev.optimization.solvers import SolverOptions
from agentev.outputs import model_metrics

PERIODS = 16


def instance(n: int, k: int, rng: np.random.Generator) -> PlanInput:
    """A fleet of ``n`` 5 kWh vehicles at random SoC, a time-of-use day slice, ``n/5`` ports."""
    hours = (k + np.arange(PERIODS) / 4.0) % 24
    price = np.where((hours >= 12) & (hours < 18), 0.1936, np.where(hours >= 6, 0.1323, 0.1052))
    busy = rng.random(n) < 0.5
    vehicles = [
        PlanVehicle(
            i,
            soc=float(rng.uniform(0.25, 0.95)),
            capacity_kwh=5.0,
            idle_kw=0.08,
            free_windows=[(15.0, PERIODS * 15.0)] if busy[i] else None,
            work_kwh=[0.12] * PERIODS,
        )
        for i in range(n)
    ]
    chargers = [PlanCharger(f"C{j}", 1) for j in range(max(1, n // 5))]
    return PlanInput(
        period_min=15.0,
        price_per_kwh=list(price),
        base_load_kw=[20.0] * PERIODS,
        vehicles=vehicles,
        chargers=chargers,
        grid_limit_kw=20.0 + 3.3 * len(chargers) * 0.8,
        needed_vehicles=[0.5 * n] * PERIODS,
        demand_charges=[PlanDemandCharge(0.36, None, 25.0)],
        energy_norm=0.135 * 5 * n / 24 * 4,
        downtime_norm=0.1 * n * 4,
        utilization_norm=max(1, n // 5) * 4,
    )


def blocked(data: PlanInput, tail_min: float) -> PlanInput:
    """``data`` with its periods after the first hour merged into ``tail_min`` blocks, as the
    controller does."""
    return block_periods(data, coarse_tail_lengths(data.periods, data.period_min, 4, tail_min))


def bench_size(
    n: int, solver: str, replans: int, tail_min: float
) -> tuple[str, float, float, float, float]:
    """(planner, build s, update ms, median re-plan ms, p95 re-plan ms) for one fleet size.

    The planner is the controller's: :func:`make_planner` with binary plug-in decisions for
    the first hour (the re-plan interval), the full MILP below 60 vehicles and the
    hierarchical one from 60.
    """
    rng = np.random.default_rng(n)
    use_blocks = tail_min > 0 and n < HIERARCHICAL_MIN_VEHICLES

    def problem(k: int) -> PlanInput:
        data = instance(n, k, rng)
        return blocked(data, tail_min) if use_blocks else data

    first = problem(5)
    planner = make_planner(n, first.periods, 1, SolverOptions(solver=solver), binary_periods=4)
    start = time.perf_counter()
    planner.update(first)  # the model is built on the first problem
    build = time.perf_counter() - start
    times, updates = [], []
    for k in range(replans):
        data = problem(6 + k)
        t0 = time.perf_counter()
        planner.update(data)
        updates.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        planner.solve(data)
        times.append(time.perf_counter() - t0)
    ms = np.array(times) * 1e3
    return (
        type(planner).__name__,
        build,
        float(np.median(updates) * 1e3),
        float(np.median(ms)),
        float(np.percentile(ms, 95)),
    )


def main() -> None:
    """Run the benchmark and print its tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,50,200,500")
    parser.add_argument("--replans", type=int, default=20)
    parser.add_argument("--glpk-max", type=int, default=50)
    parser.add_argument("--day", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--day-seeds", default="1,2,3,4,5")
    parser.add_argument("--tail-min", type=float, default=60.0)
    parser.add_argument("--compare-tail", action="store_true")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(
        f"{'vehicles':>8} {'solver':<6} {'planner':<20} {'build s':>8} {'update ms':>10} "
        f"{'median ms':>10} {'p95 ms':>9}"
    )
    for n in sizes:
        for solver in ("highs", "glpk"):
            if solver == "glpk" and n > args.glpk_max:
                continue
            name, build, update, median, p95 = bench_size(n, solver, args.replans, args.tail_min)
            print(
                f"{n:>8} {solver:<6} {name:<20} {build:>8.2f} {update:>10.1f} "
                f"{median:>10.0f} {p95:>9.0f}"
            )
    if args.day:
        print()
        walls, ratios = [], []
        for seed in [int(x) for x in args.day_seeds.split(",")]:
            wall, objective, ms = light_day(seed, args.tail_min)
            walls.append(wall)
            line = (
                f"light 24 h intelligent, seed {seed}: {wall:.1f} s wall, {len(ms)} re-plans, "
                f"median {np.median(ms):.0f} ms, p95 {np.percentile(ms, 95):.0f} ms, "
                f"J {objective:.4f}"
            )
            if args.compare_tail:
                wall_q, objective_q, _ = light_day(seed, 0.0)
                ratios.append((wall / wall_q, objective / objective_q))
                line += f"; 16 quarter-hours: {wall_q:.1f} s, J {objective_q:.4f}"
            print(line)
        print(
            f"light day over {len(walls)} seeds: median {np.median(walls):.1f} s, "
            f"max {max(walls):.1f} s (target < 5 s)"
        )
        if ratios:
            r = np.array(ratios)
            print(
                f"hour-long tail / quarter-hours: wall time x{np.mean(r[:, 0]):.2f}, "
                f"weighted objective x{np.mean(r[:, 1]):.4f} (means over seeds)"
            )


def light_day(seed: int, tail_min: float) -> tuple[float, float, np.ndarray]:
    """Wall time (s), weighted objective and re-plan times (ms) of a light intelligent day."""
    config = load_scenario("light")
    c = config.controller
    # a tail of one period is no blocking: sixteen quarter-hours
    tail = tail_min if tail_min > 0 else c.period_min
    config = replace(config, controller=replace(c, tail_period_min=tail))
    start = time.perf_counter()
    model = FactoryModel(scenario=config, strategy="intelligent", rng=seed)
    model.run_for(1440)
    wall = time.perf_counter() - start
    objective = float(model_metrics(model)["weighted_objective"].value)
    return wall, objective, np.array([r[5] for r in model.strategy.replans])


if __name__ == "__main__":
    main()
