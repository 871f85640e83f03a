"""Command line: ``agentev run`` runs one simulated day and writes its outputs.

Example::

    agentev run --scenario light --strategy fcfs --seed 42 --hours 24 --out results/demo
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from agentev.metrics import DEFINITIONS, Metric
from agentev.scenario import DEFAULT_SCENARIO, ScenarioError, check_int
from agentev.strategies import STRATEGIES


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agentev", description="Digital twin of an industrial electric-vehicle fleet."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run one simulation and write its outputs")
    run.add_argument(
        "--scenario",
        default=DEFAULT_SCENARIO,
        help="built-in scenario (light, heavy, flexible, continuous) or a .toml file "
        f"(default: {DEFAULT_SCENARIO})",
    )
    run.add_argument(
        "--strategy",
        choices=sorted(STRATEGIES),
        default=None,
        help="charging strategy (default: the scenario's)",
    )
    run.add_argument("--seed", type=int, default=42, help="random seed (default: 42)")
    run.add_argument(
        "--hours",
        "--simulation-time",
        dest="hours",
        type=float,
        default=None,
        help="simulated hours (default: the scenario's duration)",
    )
    run.add_argument(
        "--out",
        "--output-dir",
        dest="out",
        default=None,
        help="output directory (default: results/SCENARIO-STRATEGY-SEED)",
    )
    run.add_argument("--num-vehicles", type=int, default=None, help="fleet size")
    run.add_argument("--num-chargers", type=int, default=None, help="charger sites in use")
    run.add_argument("--charge-threshold", type=float, default=None, help="SoC threshold")
    run.add_argument("--grid-limit-kw", type=float, default=None, help="grid limit (kW)")
    run.add_argument(
        "--forecaster",
        choices=("rate", "perfect"),
        default=None,
        help="task demand forecaster of the twin controller (default: the scenario's)",
    )
    run.add_argument(
        "--oracle",
        action="store_true",
        help="also run the oracle (whole-run perfect-knowledge plan; a long MILP, cached per "
        "scenario and seed) to report gap_to_offline_optimum",
    )
    return parser


#: Model parameters and the options that set them, for error messages.
OPTION_OF = {
    "duration_h": "--hours",
    "num_vehicles": "--num-vehicles",
    "num_chargers": "--num-chargers",
    "charge_threshold": "--charge-threshold",
    "grid_limit_kw": "--grid-limit-kw",
    "seed": "--seed",
}


def _cli_message(message: str) -> str:
    """Name the command-line option in a parameter error (``--hours (duration_h) = -1``)."""
    for name, option in OPTION_OF.items():
        prefix = f"parameter: {name} ="
        if message.startswith(prefix):
            return f"option {option} ({name}) =" + message[len(prefix) :]
    return message


def format_table(metrics: dict[str, Metric]) -> str:
    """A plain-text table of metric, value and unit."""
    width = max(len(name) for name in DEFINITIONS)
    lines = [f"{'metric':<{width}}  {'value':>14}  unit", "-" * (width + 30)]
    for name, m in metrics.items():
        value = f"{m.value:14.0f}" if m.unit == "count" else f"{m.value:14.4f}"
        lines.append(f"{name:<{width}}  {value}  {m.unit}")
    return "\n".join(lines)


def _run(args: argparse.Namespace) -> int:
    from agentev.outputs import run_and_write
    from agentev.scenario import load_scenario

    check_int(args.seed, "seed", low=0)  # numpy seeds must be non-negative
    cfg = load_scenario(args.scenario)
    strategy = args.strategy or cfg.strategy
    out = args.out or f"results/{cfg.name}-{strategy}-{args.seed}"
    model, metrics = run_and_write(
        out,
        hours=args.hours,
        scenario=cfg,
        strategy=strategy,
        rng=args.seed,
        num_vehicles=args.num_vehicles,
        num_chargers=args.num_chargers,
        charge_threshold=args.charge_threshold,
        grid_limit_kw=args.grid_limit_kw,
        forecaster=args.forecaster,
        oracle=args.oracle,
    )
    hours = model.duration_min / 60
    print(
        f"agentev: scenario {cfg.name}, strategy {strategy}, seed {args.seed}, "
        f"{hours:g} h, {model.config.num_vehicles} vehicles, {model.num_ports} charger ports"
    )
    print(format_table(metrics))
    print(f"outputs written to {out}/")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``agentev`` console script."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            return _run(args)
    except ScenarioError as exc:
        parser.exit(2, f"agentev: error: {_cli_message(str(exc))}\n")
    return 1


if __name__ == "__main__":
    sys.exit(main())
