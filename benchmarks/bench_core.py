"""Core simulation speed.

Prints, for each scenario and baseline strategy, simulated minutes per wall-clock second
(model run only, outputs not written), and the ratio

    time(light scenario, fcfs, 24 h, construction included)
    / time(Mesa's BoltzmannWealth example, 20 agents, 1,440 steps)

measured in the same process, best of ``--repeats`` runs each. Target: ratio <= 1.0.

Usage: ``python benchmarks/bench_core.py [--repeats 5] [--seed 42]``
"""

from __future__ import annotations

import argparse
import time

from mesa.examples.basic.boltzmann_wealth_model.model import BoltzmannScenario, BoltzmannWealth

from agentev import FactoryModel, available_scenarios

#: The simulation core's speed; the planning strategies are timed by bench_planner.py.
BASELINES = ("uncontrolled", "fcfs")


def best_of(repeats: int, fn) -> float:
    """Fastest wall time of ``repeats`` calls of ``fn`` (seconds)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def boltzmann_day(seed: int) -> None:
    """Mesa's BoltzmannWealth with 20 agents over 1,440 steps."""
    BoltzmannWealth(BoltzmannScenario(n=20, rng=seed)).run_for(1440)


def light_fcfs_day(seed: int) -> None:
    """One 24 h light-scenario day with fcfs, construction included."""
    FactoryModel(scenario="light", strategy="fcfs", rng=seed).run_for(1440)


def main() -> None:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    print(f"{'scenario':<12} {'strategy':<14} {'sim min':>8} {'wall s':>8} {'sim min/s':>10}")
    for scenario in available_scenarios():
        for strategy in BASELINES:
            model = FactoryModel(scenario=scenario, strategy=strategy, rng=args.seed)
            minutes = model.duration_min
            start = time.perf_counter()
            model.run_for(minutes)
            wall = time.perf_counter() - start
            print(
                f"{scenario:<12} {strategy:<14} {minutes:>8d} {wall:>8.3f} {minutes / wall:>10.0f}"
            )

    boltzmann = best_of(args.repeats, lambda: boltzmann_day(args.seed))
    light = best_of(args.repeats, lambda: light_fcfs_day(args.seed))
    print()
    print(f"BoltzmannWealth 20 agents x 1440 steps: {boltzmann:.3f} s (best of {args.repeats})")
    print(f"light/fcfs 24 h day incl. construction: {light:.3f} s (best of {args.repeats})")
    print(f"per simulated minute: {light / 1440 * 1e3:.3f} ms")
    print(f"ratio light-day / BoltzmannWealth: {light / boltzmann:.2f} (target <= 1.0)")


if __name__ == "__main__":
    main()
