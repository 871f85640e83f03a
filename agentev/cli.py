"""Command line.

* ``agentev run``: one simulated day and its outputs;
* ``agentev experiments``: a campaign (scenarios x strategies x replications), resumable,
  with statistics and reports;
* ``agentev monitor DIR``: a running campaign's progress, rate and ETA;
* ``agentev sweep``: a parameter sweep (``mesa.batch_run``) or the objective weights' Pareto
  front;
* ``agentev viz``: the interactive page in the browser, with no CDN access needed;
* ``agentev plant`` / ``agentev twin``: the simulated fleet and the live twin on an MQTT broker
  (VDA 5050), see docs/twin.md.

Examples::

    agentev run --scenario light --strategy fcfs --seed 42 --hours 24 --out results/demo
    agentev experiments --scenarios light,heavy --strategies fcfs,intelligent
        --replications 30 --simulation-time 24 --output-dir results
    agentev monitor results
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence

from agentev.forecasting import FORECASTER_NAMES
from agentev.metrics import DEFINITIONS, Metric
from agentev.scenario import DEFAULT_SCENARIO, ScenarioError, check_int
from agentev.strategies import DEPRECATED_STRATEGIES, STRATEGIES


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
        choices=sorted([*STRATEGIES, *DEPRECATED_STRATEGIES]),
        default=None,
        help="charging strategy (default: the scenario's; 'oracle' is a deprecated name of "
        "'hindsight')",
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
        choices=FORECASTER_NAMES,
        default=None,
        help="task demand forecaster of the twin controller (default: the scenario's)",
    )
    run.add_argument(
        "--forecast-quantile",
        type=float,
        default=None,
        help="robust planning: plan for this upper quantile of the learned forecast, in "
        "(0.5, 1) (default: the scenario's, else the mean)",
    )
    run.add_argument(
        "--hindsight",
        action="store_true",
        help="also run the hindsight plan (whole-run perfect-knowledge plan, executed; a long "
        "MILP, cached per scenario and seed) to report gap_to_hindsight_plan",
    )
    run.add_argument(
        "--oracle",
        action="store_true",
        help="deprecated: use --hindsight",
    )
    run.add_argument(
        "--no-references",
        dest="references",
        action="store_false",
        help="skip the lower bound (gap_to_lower_bound) and the fcfs run of the same seed "
        "(possible_saving, savings_captured)",
    )
    _experiments_parser(sub)
    monitor = sub.add_parser("monitor", help="show a running campaign's progress, rate and ETA")
    monitor.add_argument("output_dir", help="the campaign's output directory")
    monitor.add_argument(
        "--interval", type=float, default=5.0, help="seconds between updates (default: 5)"
    )
    monitor.add_argument("--once", action="store_true", help="print once and exit")
    from agentev.experiments import sweep

    sweep.add_parser(sub)
    from agentev import vizserver

    vizserver.add_parser(sub)
    from agentev.twin import cli as twin_cli

    twin_cli.add_parsers(sub)
    return parser


def _experiments_parser(sub) -> None:
    from agentev.experiments.framework import BASE_SEED, DEFAULT_SCENARIOS, DEFAULT_STRATEGIES

    exp = sub.add_parser(
        "experiments",
        help="run (or resume) a campaign: scenarios x strategies x replications, with reports",
    )
    exp.add_argument(
        "--scenarios",
        default=",".join(DEFAULT_SCENARIOS),
        help=f"comma-separated scenarios (default: {','.join(DEFAULT_SCENARIOS)})",
    )
    exp.add_argument(
        "--strategies",
        default=",".join(DEFAULT_STRATEGIES),
        help=f"comma-separated strategies (default: {','.join(DEFAULT_STRATEGIES)})",
    )
    exp.add_argument("--replications", type=int, default=30, help="replications (default: 30)")
    exp.add_argument(
        "--simulation-time",
        type=float,
        default=None,
        help="simulated hours per run (default: each scenario's duration)",
    )
    exp.add_argument("--output-dir", default="results", help="output directory (default: results)")
    exp.add_argument(
        "--workers", type=int, default=None, help="local worker processes (default: one per core)"
    )
    exp.add_argument(
        "--scheduler",
        default=None,
        help="Dask scheduler address (tcp://HOST:8786) to run on a cluster instead",
    )
    exp.add_argument(
        "--base-seed",
        type=int,
        default=BASE_SEED,
        help=f"replication k uses seed BASE_SEED + k (default: {BASE_SEED})",
    )
    exp.add_argument(
        "--no-checkpoints", action="store_true", help="neither store nor resume from checkpoints"
    )
    exp.add_argument("--no-reports", action="store_true", help="skip statistics and figures")


def _experiments(args: argparse.Namespace) -> int:
    from agentev.experiments import CampaignError, ExperimentalFramework

    framework = ExperimentalFramework(
        output_dir=args.output_dir,
        enable_checkpoints=not args.no_checkpoints,
        workers=args.workers,
        scheduler=args.scheduler,
        base_seed=args.base_seed,
    )
    try:
        runs = framework.run_comprehensive_experiments(
            num_replications=args.replications,
            scenarios=[s for s in args.scenarios.split(",") if s],
            strategies=[s for s in args.strategies.split(",") if s],
            simulation_time=args.simulation_time,
        )
    except CampaignError as exc:
        print(f"agentev: {exc}", file=sys.stderr)
        return 1
    print(f"{len(runs)} runs in {args.output_dir}/runs.csv")
    if not args.no_reports:
        files = framework.generate_reports()
        print(f"report: {files['report']}")
    return 0


def _monitor(args: argparse.Namespace) -> int:
    import time

    from agentev.experiments.checkpoint import CheckpointStore
    from agentev.experiments.framework import campaign_status

    store = CheckpointStore(args.output_dir)
    while True:
        print(campaign_status(args.output_dir), flush=True)
        summary = store.read_summary()
        finished = summary is not None and store.count() >= (summary.get("total") or 0)
        if args.once or finished:
            return 0
        time.sleep(args.interval)


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
    from agentev.strategies import strategy_name

    check_int(args.seed, "seed", low=0)  # numpy seeds must be non-negative
    cfg = load_scenario(args.scenario)
    strategy = strategy_name(args.strategy or cfg.strategy)
    if args.oracle:
        warnings.warn("--oracle is deprecated; use --hindsight", DeprecationWarning, stacklevel=1)
        print(
            "agentev: --oracle is deprecated and will be removed; use --hindsight", file=sys.stderr
        )
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
        forecast_quantile=args.forecast_quantile,
        references=args.references,
        hindsight=args.hindsight or args.oracle,
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
        if args.command == "experiments":
            return _experiments(args)
        if args.command == "monitor":
            return _monitor(args)
        if args.command == "sweep":
            from agentev.experiments import sweep

            return sweep.run_command(args)
        if args.command == "viz":
            from agentev import vizserver

            return vizserver.run_command(args)
        if args.command in ("plant", "twin"):
            from agentev.twin import cli as twin_cli

            return twin_cli.run_command(args)
    except (ScenarioError, ValueError) as exc:
        parser.exit(2, f"agentev: error: {_cli_message(str(exc))}\n")
    return 1


if __name__ == "__main__":
    sys.exit(main())
