"""The live twin: VDA 5050 messages on the official schemas, the mirror, hostile input, and
plant and twin in separate processes on a real Mosquitto broker."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from copy import deepcopy
from pathlib import Path

import fastjsonschema
import jsonschema
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentev.metrics import metrics_from_dir
from agentev.model import FactoryModel
from agentev.scenario import SCENARIO_DIR
from agentev.twin import InProcessBus, Plant, PlantOptions, Twin, protocol, run_inprocess
from agentev.twin.messages import (
    START_CHARGING,
    STOP_CHARGING,
    ChargeCommand,
    MessageError,
    VehicleReport,
    time_min_of,
    timestamp,
)
from agentev.twin.mirror import FleetMirror
from agentev.twin.plant import Replay

SHARED = Path(__file__).resolve().parents[2] / "shared" / "vda5050-2.1.0"
SHIPPED = Path(__file__).resolve().parents[1] / "agentev" / "twin" / "schemas" / "vda5050-2.1.0"
KIND_OF = {"state": "state", "instantActions": "instantActions", "connection": "connection"}
#: Stated bound of the twin's SoC estimate against the plant's true SoC (fraction), with every
#: state received, and with 10 % of them lost and 2 s of latency.
SOC_TOL_CLEAN, SOC_TOL_LOSSY = 0.02, 0.05


@pytest.fixture(scope="module")
def low_soc_scenario(tmp_path_factory) -> Path:
    """Light, 3 h, batteries starting at 25-50 %: the twin's plans charge in the first hour."""
    text = (SCENARIO_DIR / "light.toml").read_text()
    for old, new in (
        ('name = "light"', 'name = "light-low"'),
        ("duration_h = 24", "duration_h = 3"),
        ("initial_soc_min = 0.5", "initial_soc_min = 0.25"),
        ("initial_soc_max = 1.0", "initial_soc_max = 0.5"),
    ):
        assert old in text
        text = text.replace(old, new)
    path = tmp_path_factory.mktemp("scenario") / "light-low.toml"
    path.write_text(text)
    return path


def official(kind: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(json.loads((SHARED / f"{kind}.schema").read_text()))


# ----------------------------------------------------------------------------- schemas
def test_the_shipped_schemas_are_the_official_ones_with_their_licence():
    for path in SHARED.iterdir():
        assert (SHIPPED / path.name).read_bytes() == path.read_bytes(), path.name
    assert "Permission is hereby granted" in (SHIPPED / "LICENSE.txt").read_text()


def test_every_message_agentev_publishes_validates_against_the_official_schemas(
    low_soc_scenario,
):
    bus = InProcessBus()
    tap = bus.connect("tap")
    seen: list[tuple[str, bytes]] = []
    tap.subscribe("uagv/#", lambda topic, payload: seen.append((topic, payload)))
    proto = protocol()
    twin_link = bus.connect("twin")
    twin = Twin(twin_link, FactoryModel(low_soc_scenario, rng=1), proto)
    plant = Plant(
        bus.connect("plant"),
        FactoryModel(low_soc_scenario, rng=1, strategy="fcfs"),
        PlantOptions(soc_noise=0.01, drop_rate=0.05),
        proto,
        pump=twin_link.poll,
    )
    plant.run()
    tap.poll()
    kinds = {}
    for topic, payload in seen:
        kind = topic.rsplit("/", 1)[1]
        doc = json.loads(payload)
        errors = list(official(KIND_OF[kind]).iter_errors(doc))
        assert not errors, (topic, errors[0].message)
        kinds[kind] = kinds.get(kind, 0) + 1
    assert kinds["instantActions"] == twin.counters.commands_sent > 0
    assert kinds["state"] == plant.counters.states_published > 1000
    assert kinds["connection"] == 2 * len(plant.model.vehicles)


def test_messages_round_trip_and_version_lives_in_one_protocol_class():
    proto = protocol("2.1.0", manufacturer="acme")
    report = VehicleReport(
        "agv-001",
        7,
        61.5,
        0.4321,
        True,
        driving=False,
        busy=True,
        loaded=True,
        order_id="task-12",
        node_id="C1",
        x_m=12.0,
        y_m=6.0,
    )
    back = proto.decode_state(proto.dumps("state", proto.encode_state(report)))
    assert back == report
    command = ChargeCommand("agv-001", START_CHARGING, "a-1", 3.0, "C2", 0.8, header_id=5)
    (decoded,) = proto.decode_commands(proto.dumps("instantActions", proto.encode_command(command)))
    assert decoded == command and decoded.target_soc == pytest.approx(0.8)
    assert proto.topic("agv-001", "state") == "uagv/v2/acme/agv-001/state"
    assert time_min_of(timestamp(1234.5)) == 1234.5
    with pytest.raises(ValueError, match=r"version = '3.0.0': allowed: 2.1.0"):
        protocol("3.0.0")


@pytest.mark.parametrize(
    ("mutate", "reason", "text"),
    [
        (lambda d: d["batteryState"].update(batteryCharge=140.0), "range", "batteryCharge = 140"),
        (lambda d: d.pop("batteryState"), "schema", "batteryState"),
        (lambda d: d.update(headerId="7"), "schema", "headerId"),
        (lambda d: d.update(timestamp="yesterday"), "schema", "timestamp = 'yesterday'"),
        (lambda d: d.update(manufacturer="other"), "unknown", "manufacturer = 'other'"),
    ],
)
def test_a_bad_state_names_the_field_the_value_and_what_is_allowed(mutate, reason, text):
    proto = protocol()
    doc = proto.encode_state(VehicleReport("agv-001", 1, 0.0, 0.5, False))
    mutate(doc)
    with pytest.raises(MessageError, match=text) as info:
        proto.decode_state(json.dumps(doc))
    assert info.value.reason == reason


# ----------------------------------------------------------------------------- the mirror
def report(serial="agv-001", header=1, t=0.0, soc=0.5, charging=False, **kw) -> VehicleReport:
    return VehicleReport(serial, header, t, soc, charging, **kw)


def test_the_mirror_integrates_the_expected_power_between_states_and_corrects_on_each():
    model = FactoryModel("light", rng=0)
    mirror = FleetMirror(model, stale_after_min=3.0)
    vt = model.vehicles[0].vtype
    mirror.apply(report(t=10.0, soc=0.5))
    mirror.advance(40.0)  # 30 min standing idle
    m = mirror.vehicles["agv-001"]
    idle = 0.5 - vt.idle_kw * 0.5 / vt.capacity_kwh
    assert m.estimate_soc == pytest.approx(idle)
    assert m.stale  # 30 min without a state
    mirror.apply(report(header=2, t=40.0, soc=0.6, charging=True))
    assert not m.stale and m.estimate_soc == 0.6
    assert mirror.counters.soc_errors == [pytest.approx(0.6 - idle)]  # the innovation
    mirror.advance(50.0)  # 10 min charging below the knee at the port's power
    gain = min(vt.max_charge_power_kw, m.port_kw) * vt.charging_efficiency / 6.0
    assert m.estimate_soc == pytest.approx(0.6 + gain / vt.capacity_kwh)


def test_duplicate_and_out_of_order_states_are_ignored_whole():
    mirror = FleetMirror(FactoryModel("light", rng=0))
    assert mirror.apply(report(header=5, t=5.0, soc=0.5)) == "applied"
    assert mirror.apply(report(header=5, t=5.0, soc=0.1)) == "duplicate"
    assert mirror.apply(report(header=4, t=4.0, soc=0.1)) == "out_of_order"
    assert mirror.apply(report(serial="agv-099", header=9, t=6.0)) == "unknown_vehicle"
    assert mirror.vehicles["agv-001"].report.soc == 0.5
    c = mirror.counters
    assert (c.applied, c.duplicates, c.out_of_order, c.unknown_vehicle) == (1, 1, 1, 1)


def test_a_command_not_carried_out_and_an_unexpected_charge_are_state_mismatches():
    mirror = FleetMirror(FactoryModel("light", rng=0), mismatch_grace_min=2.0)
    mirror.apply(report(header=1, t=0.0, soc=0.5, charging=True))
    mirror.command_sent("agv-001", STOP_CHARGING, "s-1", 1.0)
    mirror.apply(report(header=2, t=2.0, soc=0.52, charging=True))  # within the grace time
    assert mirror.counters.mismatches == 0
    mirror.apply(report(header=3, t=4.0, soc=0.54, charging=True))  # the stop was ignored
    assert mirror.counters.mismatches == 1
    mirror.apply(report(header=4, t=5.0, soc=0.55, charging=True))  # counted once
    assert mirror.counters.mismatches == 1
    mirror.apply(report("agv-002", header=1, t=5.0, soc=0.5))
    mirror.apply(report("agv-002", header=2, t=6.0, soc=0.51, charging=True))  # not commanded
    assert mirror.counters.mismatches == 2


# ----------------------------------------------------------------------------- hostile input
def _valid_state() -> dict:
    proto = protocol()
    return proto.encode_state(VehicleReport("agv-001", 1, 0.0, 0.5, False))


def _mirror_snapshot(twin: Twin) -> list:
    return [
        (m.report, m.estimate_soc, m.estimate_min, m.stale) for m in twin.mirror.vehicles.values()
    ]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


@st.composite
def hostile(draw):
    """Bytes, JSON of any shape, or a valid state with one field replaced, dropped or added."""
    kind = draw(st.sampled_from(["bytes", "json", "field", "nested", "serial"]))
    topic = "uagv/v2/agentev/agv-001/state"
    if kind == "bytes":
        return topic, draw(st.binary(max_size=200))
    if kind == "json":
        return topic, json.dumps(draw(json_values)).encode()
    doc = _valid_state()
    if kind == "field":
        key = draw(st.sampled_from(sorted(doc)))
        if draw(st.booleans()):
            doc.pop(key)
        else:
            doc[key] = draw(json_values)
    elif kind == "nested":
        doc["batteryState"]["batteryCharge"] = draw(
            st.floats() | st.integers(min_value=-(10**30), max_value=10**30) | st.text(max_size=4)
        )
        doc["agvPosition"]["x"] = draw(st.floats(allow_nan=False) | st.just(1e308))
    else:
        doc["serialNumber"] = draw(st.text(max_size=10))
        topic = draw(
            st.sampled_from(
                [
                    topic,
                    f"uagv/v2/agentev/{doc['serialNumber']}/state",
                    "uagv/v2/other/agv-001/state",
                    "uagv/v2/agentev/x/order",
                ]
            )
        )
    text = json.dumps(doc, allow_nan=True)  # hostile senders may send NaN/Infinity
    return topic, text.encode()


@pytest.fixture(scope="module")
def fuzz_twin():
    return Twin(InProcessBus().connect("twin"), FactoryModel("light", rng=0), control=False)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(message=hostile())
def test_hostile_messages_are_counted_and_never_crash_or_corrupt_the_twin(fuzz_twin, message):
    twin = fuzz_twin
    topic, payload = message
    before = deepcopy(_mirror_snapshot(twin))
    rejected = sum(twin.counters.rejected.values())
    outcome = twin.handle(topic, payload)
    after = _mirror_snapshot(twin)
    if outcome == "applied":
        r = twin.mirror.vehicles["agv-001"].report
        assert 0.0 <= r.soc <= 1.0 and math.isfinite(r.x_m) and math.isfinite(r.y_m)
    else:
        assert after == before  # nothing of a rejected message is applied
        if outcome not in ("duplicate", "out_of_order"):
            assert sum(twin.counters.rejected.values()) == rejected + 1


def test_the_plant_rejects_a_bad_command_whole_counts_and_logs_it(caplog):
    bus = InProcessBus()
    plant = Plant(bus.connect("plant"), FactoryModel("light", rng=0, duration_h=1))
    proto = protocol()
    doc = proto.encode_command(ChargeCommand("agv-001", START_CHARGING, "a-1", 0.0, "C1", 0.9))
    doc["actions"].append(dict(doc["actions"][0], actionType="selfDestruct", actionId="a-2"))
    sender = bus.connect("sender")
    sender.publish(proto.topic("agv-001", "instantActions"), json.dumps(doc).encode())
    sender.publish(proto.topic("agv-001", "instantActions"), b"{not json")
    plant.transport.poll()
    assert plant.counters.commands_received == 0
    assert plant.counters.messages_rejected == {"json": 1, "range": 1}
    logged = [r.getMessage() for r in caplog.records if r.name == "agentev.twin.plant"]
    assert any("rejected (range, #1)" in m and "selfDestruct" in m for m in logged)
    assert any("rejected (json, #1)" in m for m in logged)


def test_bad_plant_options_name_the_field_the_value_and_what_is_allowed():
    with pytest.raises(ValueError, match=r"state_period_s = 90.0: allowed: a positive multiple"):
        PlantOptions(state_period_s=90.0)
    with pytest.raises(ValueError, match=r"drop_rate = 1.5: allowed"):
        PlantOptions(drop_rate=1.5)


# ----------------------------------------------------------------------------- whole runs
def _soc_errors(plant_dir: Path, twin_dir: Path) -> np.ndarray:
    truth = pd.read_csv(plant_dir / "timeseries.csv")[["time_min", "vehicle_id", "soc"]]
    est = pd.read_csv(twin_dir / "twin_estimates.csv")
    joined = truth.merge(est, on=["time_min", "vehicle_id"], how="inner")
    assert len(joined) >= 0.95 * len(truth)
    return (joined["soc_estimate"] - joined["soc"]).abs().to_numpy()


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "agentev.cli", *args]


def _run_processes(broker: str, scenario: Path, out: Path, *plant_args: str) -> None:
    common = ["--scenario", str(scenario), "--seed", "1", "--manufacturer", out.name]
    twin = subprocess.Popen(
        _cli(
            "twin",
            "--broker",
            broker,
            *common,
            "--out",
            str(out / "twin"),
            "--idle-timeout-s",
            "60",
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        plant = subprocess.run(
            _cli("plant", "--broker", broker, *common, "--out", str(out / "plant"), *plant_args),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert plant.returncode == 0, plant.stderr[-2000:]
        _, err = twin.communicate(timeout=120)
        assert twin.returncode == 0, err[-2000:]
    finally:
        twin.kill()


def test_plant_and_twin_in_two_processes_on_mosquitto_match_the_in_process_run(
    mqtt_broker, low_soc_scenario, tmp_path
):
    _run_processes(mqtt_broker, low_soc_scenario, tmp_path / "mqtt")
    run_inprocess(str(low_soc_scenario), seed=1, out=tmp_path / "inproc", manufacturer="mqtt")
    plant = json.loads((tmp_path / "mqtt" / "plant" / "plant.json").read_text())
    twin = json.loads((tmp_path / "mqtt" / "twin" / "twin.json").read_text())
    # the twin's commands reached the plant and were carried out
    assert twin["commands_sent"] == plant["commands_received"] == plant["commands_applied"] > 0
    assert twin["rejected"] == {} and plant["messages_rejected"] == {}
    # the same plant outcome through Mosquitto as on the in-process bus (noise-free)
    for name in ("timeseries.csv", "grid.csv", "tasks.csv", "sessions.csv"):
        mqtt = (tmp_path / "mqtt" / "plant" / name).read_bytes()
        assert mqtt == (tmp_path / "inproc" / "plant" / name).read_bytes(), name
    assert (tmp_path / "mqtt" / "twin" / "twin_estimates.csv").read_bytes() == (
        tmp_path / "inproc" / "twin" / "twin_estimates.csv"
    ).read_bytes()
    errors = _soc_errors(tmp_path / "mqtt" / "plant", tmp_path / "mqtt" / "twin")
    assert errors.max() <= SOC_TOL_CLEAN


def test_with_lost_messages_and_latency_the_run_completes_without_soc_violation(
    mqtt_broker, low_soc_scenario, tmp_path
):
    _run_processes(
        mqtt_broker, low_soc_scenario, tmp_path / "lossy", "--drop", "0.1", "--latency-s", "2"
    )
    plant = json.loads((tmp_path / "lossy" / "plant" / "plant.json").read_text())
    twin = json.loads((tmp_path / "lossy" / "twin" / "twin.json").read_text())
    assert 0.05 < plant["states_dropped"] / plant["states_sampled"] < 0.15
    assert twin["states_applied"] == plant["states_published"]
    assert twin["commands_sent"] == plant["commands_received"] > 0
    metrics = metrics_from_dir(tmp_path / "lossy" / "plant")
    assert metrics["soc_violations"].value == 0
    model = FactoryModel(low_soc_scenario, rng=1)
    assert metrics["tasks_completed"].value >= 0.99 * len(
        [t for t in model.task_trace if t.release_min < model.duration_min - 30]
    )
    assert _soc_errors(tmp_path / "lossy" / "plant", tmp_path / "lossy" / "twin").max() <= (
        SOC_TOL_LOSSY
    )


def test_a_recorded_timeseries_replays_as_the_fleets_telemetry(low_soc_scenario, tmp_path):
    run_inprocess(str(low_soc_scenario), seed=2, out=tmp_path / "live")
    bus = InProcessBus()
    twin_link = bus.connect("twin")
    twin = Twin(twin_link, FactoryModel(low_soc_scenario, rng=2), control=False)
    replay = Replay(
        bus.connect("replay"),
        tmp_path / "live" / "plant" / "timeseries.csv",
        FactoryModel(low_soc_scenario, rng=2),
        pump=twin_link.poll,
    )
    plant = replay.run()
    twin_link.poll()
    recorded = pd.read_csv(tmp_path / "live" / "plant" / "timeseries.csv")
    assert twin.mirror.counters.applied == len(recorded) == plant.counters.states_published
    last = recorded[recorded["time_min"] == recorded["time_min"].max()]
    for row in last.itertuples():
        mirrored = twin.mirror.vehicles_by_id[row.vehicle_id].report
        assert mirrored.soc == row.soc and mirrored.charging == (row.state == "charging")
    with pytest.raises(ValueError, match="columns .* missing"):
        Replay(
            bus.connect("bad"),
            tmp_path / "live" / "plant" / "grid.csv",
            FactoryModel(low_soc_scenario, rng=2),
        )


@settings(max_examples=300, deadline=None)
@given(message=hostile())
def test_the_fast_validator_agrees_with_the_reference_one(message):
    _, payload = message
    try:
        doc = json.loads(payload)
    except ValueError:
        return
    proto = protocol()
    fast_ok = True
    try:
        proto._fast["state"](doc)
    except fastjsonschema.JsonSchemaException:
        fast_ok = False
    assert fast_ok == official("state").is_valid(doc)


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (
            ["plant", "--broker", "mqtt://127.0.0.1:1", "--state-period-s", "90"],
            2,
            "state_period_s = 90.0: allowed: a positive multiple of 60 s",
        ),
        (["plant", "--broker", "http://127.0.0.1:1883"], 2, "http://127.0.0.1:1883"),
        (
            ["twin", "--broker", "mqtt://127.0.0.1:1", "--hours", "1"],
            1,
            "cannot connect to the MQTT broker at mqtt://127.0.0.1:1",
        ),
    ],
)
def test_the_commands_name_a_bad_option_or_an_unreachable_broker(args, code, message):
    done = subprocess.run(_cli(*args), capture_output=True, text=True, timeout=120)
    assert done.returncode == code
    assert message in done.stderr and "Traceback" not in done.stderr


def test_twin_inprocess_command_writes_both_sides(tmp_path):
    out = tmp_path / "live"
    done = subprocess.run(
        _cli("twin", "--inprocess", "--scenario", "light", "--hours", "1", "--out", str(out)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads((out / "twin" / "twin.json").read_text())
    assert summary == json.loads(done.stdout[: done.stdout.rindex("}") + 1])
    assert summary["states_applied"] == 8 * 61  # 8 AGVs, minutes 0..60
    assert (out / "plant" / "timeseries.csv").is_file()


def test_a_fleet_without_clock_ticks_drives_the_twin_by_its_state_timestamps():
    from datetime import datetime, timedelta, timezone

    epoch = datetime(2026, 12, 7, 6, 0, tzinfo=timezone(timedelta(hours=1)))
    proto = protocol(epoch=epoch)
    bus = InProcessBus()
    twin_link = bus.connect("twin")
    twin = Twin(twin_link, FactoryModel("light", rng=0, duration_h=3), proto)
    fleet = bus.connect("fleet")
    for minute in range(0, 31):
        for v in twin.model.vehicles:
            serial = f"agv-{v.unique_id:03d}"
            soc = 0.36 - 0.001 * minute
            r = VehicleReport(serial, minute + 1, float(minute), soc, False)
            fleet.publish(proto.topic(serial, "state"), proto.dumps("state", proto.encode_state(r)))
        twin_link.poll()
    assert twin.mirror.now_min == 30.0 and twin.counters.plans >= 1
    doc = json.loads(proto.dumps("state", proto.encode_state(report(t=30.0))))
    assert doc["timestamp"] == "2026-12-07T05:30:00.000Z"  # minute 30 after 06:00+01:00
    # a stamp hours ahead of the clock is rejected, and the vehicle keeps its later states
    late = VehicleReport("agv-001", 99, 600.0, 0.9, False)
    assert (
        twin.handle(proto.topic("agv-001", "state"), proto.dumps("state", proto.encode_state(late)))
        == "range"
    )
    nxt = VehicleReport("agv-001", 40, 31.0, 0.3, False)
    assert (
        twin.handle(proto.topic("agv-001", "state"), proto.dumps("state", proto.encode_state(nxt)))
        == "applied"
    )
