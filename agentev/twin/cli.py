"""``agentev plant`` and ``agentev twin``: the two sides of the live twin on a broker.

Examples::

    agentev plant --broker mqtt://127.0.0.1:1883 --scenario light --out results/plant
    agentev twin --broker mqtt://127.0.0.1:1883 --scenario light --out results/twin
    agentev plant --broker mqtt://127.0.0.1:1883 --replay results/demo/timeseries.csv
    agentev twin --inprocess --scenario light --out results/live   # both sides, no broker
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime

from agentev.scenario import DEFAULT_SCENARIO
from agentev.twin.messages import EPOCH


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scenario", default=DEFAULT_SCENARIO, help="built-in scenario or .toml")
    p.add_argument("--seed", type=int, default=42, help="random seed (default: 42)")
    p.add_argument("--hours", type=float, default=None, help="simulated hours")
    p.add_argument("--manufacturer", default="agentev", help="VDA 5050 manufacturer name")
    p.add_argument("--out", default=None, help="output directory")
    p.add_argument(
        "--epoch",
        type=_epoch,
        default=EPOCH,
        help="wall-clock time of minute 0, ISO 8601 with offset (default "
        f"{EPOCH.isoformat()}); a live fleet's timestamps are minutes from it",
    )


def _epoch(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--epoch {text!r}: allowed: an ISO 8601 time, e.g. 2026-12-07T06:00:00+01:00"
        ) from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"--epoch {text!r}: allowed: a time with a UTC offset")
    return moment


def add_parsers(sub) -> None:
    """Add ``plant`` and ``twin`` to the ``agentev`` command line."""
    plant = sub.add_parser("plant", help="run the simulated fleet on a broker (VDA 5050)")
    plant.add_argument("--broker", required=True, help="mqtt://host[:port]")
    _common(plant)
    plant.add_argument("--strategy", default="fcfs", help="the vehicles' own charging rule")
    plant.add_argument("--state-period-s", type=float, default=60.0)
    plant.add_argument("--soc-noise", type=float, default=0.0, help="std of SoC noise")
    plant.add_argument("--latency-s", type=float, default=0.0, help="message latency (s)")
    plant.add_argument("--drop", type=float, default=0.0, help="share of states lost")
    plant.add_argument(
        "--no-lockstep",
        dest="lockstep",
        action="store_false",
        help="do not wait for the twin each minute; run at --speed",
    )
    plant.add_argument("--speed", type=float, default=600.0, help="simulated s per s")
    plant.add_argument("--ack-timeout-s", type=float, default=60.0)
    plant.add_argument("--replay", default=None, help="publish this timeseries.csv instead")

    twin = sub.add_parser("twin", help="mirror a fleet from its telemetry and send commands")
    where = twin.add_mutually_exclusive_group(required=True)
    where.add_argument("--broker", help="mqtt://host[:port]")
    where.add_argument(
        "--inprocess", action="store_true", help="run a simulated plant in this process"
    )
    _common(twin)
    twin.add_argument("--solver", default=None, help="highs or glpk (default: the scenario's)")
    twin.add_argument("--stale-after-s", type=float, default=180.0)
    twin.add_argument("--no-control", dest="control", action="store_false")
    twin.add_argument("--idle-timeout-s", type=float, default=120.0)


def run_command(args: argparse.Namespace) -> int:
    """Run ``agentev plant`` or ``agentev twin``.

    A broker that cannot be reached, or a peer that never answers, ends it with exit code 1
    and one line saying so.
    """
    try:
        return _run(args)
    except (ConnectionError, TimeoutError) as exc:
        print(f"agentev {args.command}: error: {exc}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    from agentev.scenario import check_int
    from agentev.twin.plant import PlantOptions
    from agentev.twin.runner import run_inprocess, run_plant, run_replay, run_twin

    check_int(args.seed, "seed", low=0)
    if args.command == "plant":
        options = PlantOptions(
            state_period_s=args.state_period_s,
            soc_noise=args.soc_noise,
            latency_s=args.latency_s,
            drop_rate=args.drop,
            lockstep=args.lockstep,
            speed=args.speed,
            ack_timeout_s=args.ack_timeout_s,
        )
        kwargs = dict(
            seed=args.seed,
            hours=args.hours,
            options=options,
            out=args.out,
            manufacturer=args.manufacturer,
            epoch=args.epoch,
        )
        if args.replay:
            plant = run_replay(args.broker, args.replay, args.scenario, **kwargs)
        else:
            plant = run_plant(args.broker, args.scenario, strategy=args.strategy, **kwargs)
        print(json.dumps(plant.summary(), indent=2))
        return 0
    if args.inprocess:
        plant, twin = run_inprocess(
            args.scenario,
            seed=args.seed,
            hours=args.hours,
            control=args.control,
            solver=args.solver,
            out=args.out,
            manufacturer=args.manufacturer,
            epoch=args.epoch,
        )
    else:
        twin = run_twin(
            args.broker,
            args.scenario,
            seed=args.seed,
            hours=args.hours,
            control=args.control,
            solver=args.solver,
            stale_after_s=args.stale_after_s,
            out=args.out,
            manufacturer=args.manufacturer,
            epoch=args.epoch,
            idle_timeout_s=args.idle_timeout_s,
        )
    print(json.dumps(twin.summary(), indent=2))
    if args.out:
        print(f"outputs written to {args.out}/")
    return 0
