"""The live twin's speed: messages ingested per second and the control-loop latency.

For fleets of 10, 100 and 500 AGVs (the ``large`` scenario's vehicles, one charger per five
vehicles), prints:

* **ingest, handler**: VDA 5050 ``state`` messages per second through ``Twin.handle`` (JSON
  parse, official-schema validation, range checks, mirror update), one process;
* **ingest, Mosquitto**: the same messages published by a second client through a private
  Mosquitto broker on 127.0.0.1 and handled by the twin, first publish to last handled;
* **control loop**: wall-clock time from the plant's clock tick reaching the twin (after that
  minute's states) to the twin's last ``startCharging`` / ``stopCharging`` of that minute
  published, over the minutes in which it sent commands (in-process plant and twin in
  lockstep, ``hours`` of a day whose batteries start at 22-40 %), split into minutes with a
  re-plan (the MILP solve included) and without; and the re-plans' own solve time.

Usage: ``python benchmarks/bench_twin.py [--sizes 10,100,500] [--hours 4] [--messages 20000]``
(needs Debian's mosquitto: ``make setup``).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from tempfile import TemporaryDirectory

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agentev.model import FactoryModel  # noqa: E402
from agentev.scenario import apply_overrides, load_scenario  # noqa: E402
from agentev.twin import InProcessBus, MqttTransport, Twin, protocol, run_inprocess  # noqa: E402
from agentev.twin.messages import VehicleReport, serial_number  # noqa: E402
from tests.mqtt_broker import start_broker, stop_broker  # noqa: E402


def scenario(n: int, hours: float, low_soc: bool):
    """The ``large`` plant with ``n`` AGVs and ``n / 5`` chargers."""
    cfg = apply_overrides(
        load_scenario("large"), num_vehicles=n, num_chargers=max(2, n // 5), duration_h=hours
    )
    return replace(cfg, initial_soc_range=(0.22, 0.4)) if low_soc else cfg


def payloads(model: FactoryModel, count: int) -> list[tuple[str, bytes]]:
    """``count`` valid state messages, round-robin over the fleet, one minute per round."""
    proto = protocol()
    rng = np.random.default_rng(0)
    out = []
    n = len(model.vehicles)
    for k in range(count):
        v = model.vehicles[k % n]
        serial = serial_number(v.vtype.name, v.unique_id)
        r = VehicleReport(
            serial,
            k // n + 1,
            float(k // n),
            float(rng.uniform(0.3, 0.9)),
            bool(k % 7 == 0),
            driving=bool(k % 3 == 0),
            x_m=6.0 * (k % 20),
            y_m=12.0,
        )
        out.append((proto.topic(serial, "state"), proto.dumps("state", proto.encode_state(r))))
    return out


def ingest_handler(model: FactoryModel, msgs: list[tuple[str, bytes]]) -> float:
    twin = Twin(InProcessBus().connect("twin"), model, control=False)
    start = time.perf_counter()
    for topic, payload in msgs:
        twin.handle(topic, payload)
    elapsed = time.perf_counter() - start
    assert twin.mirror.counters.applied == len(msgs)
    return len(msgs) / elapsed


def ingest_mqtt(url: str, model: FactoryModel, msgs: list[tuple[str, bytes]]) -> float:
    n = len(model.vehicles)
    link = MqttTransport(url, f"bench-twin-{n}")
    twin = Twin(link, model, control=False)
    sender = MqttTransport(url, f"bench-plant-{n}")
    started = threading.Event()
    t0 = [0.0]

    def send() -> None:
        t0[0] = time.perf_counter()
        started.set()
        for topic, payload in msgs:
            sender.publish(topic, payload)
        sender.flush()

    thread = threading.Thread(target=send)
    thread.start()
    started.wait()
    while twin.mirror.counters.applied < len(msgs):
        if not link.poll(5.0):
            raise TimeoutError(f"{twin.mirror.counters.applied} of {len(msgs)} arrived")
    elapsed = time.perf_counter() - t0[0]
    thread.join()
    sender.close()
    link.close()
    return len(msgs) / elapsed


def control_loop(n: int, hours: float) -> dict[str, float]:
    cfg = scenario(n, hours, low_soc=True)
    start = time.perf_counter()
    plant, twin = run_inprocess(cfg, seed=1)
    wall = time.perf_counter() - start
    lat = np.asarray(twin.counters.loop_latency_s)
    replan = np.asarray(twin.counters.loop_replan, dtype=bool)
    solve = np.asarray(twin.counters.plan_solve_s)
    return {
        "commands": twin.counters.commands_sent,
        "applied": plant.counters.commands_applied,
        "minutes": len(lat),
        "plain_med": float(np.median(lat[~replan])) if (~replan).any() else float("nan"),
        "plain_p95": float(np.quantile(lat[~replan], 0.95)) if (~replan).any() else float("nan"),
        "replan_med": float(np.median(lat[replan])) if replan.any() else float("nan"),
        "replan_max": float(lat[replan].max()) if replan.any() else float("nan"),
        "solve_med": float(np.median(solve)) if len(solve) else float("nan"),
        "plans": twin.counters.plans,
        "wall": wall,
        "sim_min": plant.model.duration_min,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,500")
    parser.add_argument("--hours", type=float, default=4.0)
    parser.add_argument("--messages", type=int, default=20000)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with TemporaryDirectory() as tmp:
        url, broker = start_broker(Path(tmp))
        try:
            print(f"{'vehicles':>8} {'ingest handler msg/s':>21} {'ingest Mosquitto msg/s':>23}")
            for n in sizes:
                model = FactoryModel(scenario(n, 24.0, low_soc=False), rng=0)
                msgs = payloads(model, max(args.messages, 20 * n))
                rate_h = ingest_handler(model, msgs)
                rate_m = ingest_mqtt(url, model, msgs)
                print(f"{n:>8} {rate_h:>21,.0f} {rate_m:>23,.0f}")
        finally:
            stop_broker(broker)
    print(
        f"\ncontrol loop (tick received -> last command published), in-process lockstep, "
        f"{args.hours:g} h from 22-40 % SoC; milliseconds"
    )
    print(
        f"{'vehicles':>8} {'commands':>8} {'minutes':>7} {'no re-plan med':>14} "
        f"{'p95':>7} {'re-plan med':>11} {'max':>8} {'solve med':>9} {'wall s / sim h':>14}"
    )
    for n in sizes:
        r = control_loop(n, args.hours)
        assert r["applied"] == r["commands"]
        print(
            f"{n:>8} {r['commands']:>8} {r['minutes']:>7} {1e3 * r['plain_med']:>14.1f} "
            f"{1e3 * r['plain_p95']:>7.1f} {1e3 * r['replan_med']:>11.1f} "
            f"{1e3 * r['replan_max']:>8.1f} {1e3 * r['solve_med']:>9.1f} "
            f"{r['wall'] / (r['sim_min'] / 60):>14.1f}"
        )


if __name__ == "__main__":
    main()
