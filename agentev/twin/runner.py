"""Start a plant and a twin: in one process on the in-process bus, or each on a broker.

``run_inprocess`` is the default (no server): the plant and the twin share an
:class:`~agentev.twin.transport.InProcessBus` and one thread, in lockstep.
``run_plant`` / ``run_twin`` are the two sides of ``agentev plant`` / ``agentev twin``, one
process each, on an MQTT broker (or on a bus given by the caller).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from agentev.config import ScenarioConfig
from agentev.model import FactoryModel
from agentev.twin.messages import EPOCH
from agentev.twin.plant import Plant, PlantOptions, Replay, write_plant_outputs
from agentev.twin.transport import InProcessBus, connect
from agentev.twin.twin import Twin, write_twin_outputs
from agentev.twin.vda5050 import protocol as make_protocol


def _model(
    scenario: str | Path | ScenarioConfig, seed: int, hours: float | None, strategy: str | None
) -> FactoryModel:
    return FactoryModel(scenario=scenario, rng=seed, duration_h=hours, strategy=strategy)


def run_inprocess(
    scenario: str | Path | ScenarioConfig = "light",
    *,
    seed: int = 42,
    hours: float | None = None,
    options: PlantOptions | None = None,
    plant_strategy: str = "fcfs",
    control: bool = True,
    solver: str | None = None,
    out: str | Path | None = None,
    manufacturer: str = "agentev",
    epoch: datetime = EPOCH,
) -> tuple[Plant, Twin]:
    """Run plant and twin on the in-process bus, in lockstep; write both outputs to ``out``."""
    bus = InProcessBus()
    proto = make_protocol(manufacturer=manufacturer, epoch=epoch)
    twin_link = bus.connect("twin")
    twin = Twin(
        twin_link, _model(scenario, seed, hours, None), proto, control=control, solver=solver
    )
    options = options or PlantOptions()
    if not options.lockstep:
        raise ValueError("lockstep = False: the in-process plant and twin run in lockstep")
    plant = Plant(
        bus.connect("plant"),
        _model(scenario, seed, hours, plant_strategy),
        options,
        proto,
        pump=twin_link.poll,
    )
    plant.run()
    twin_link.poll()
    if out is not None:
        write_plant_outputs(plant, Path(out) / "plant")
        write_twin_outputs(twin, Path(out) / "twin")
    return plant, twin


def run_plant(
    broker: str,
    scenario: str | Path | ScenarioConfig = "light",
    *,
    seed: int = 42,
    hours: float | None = None,
    options: PlantOptions | None = None,
    strategy: str = "fcfs",
    out: str | Path | None = None,
    manufacturer: str = "agentev",
    epoch: datetime = EPOCH,
    bus: InProcessBus | None = None,
) -> Plant:
    """The plant side on a broker; its outputs go to ``out``."""
    with connect(broker, f"agentev-plant-{manufacturer}", bus) as link:
        plant = Plant(
            link,
            _model(scenario, seed, hours, strategy),
            options,
            make_protocol(manufacturer=manufacturer, epoch=epoch),
        )
        plant.run()
    if out is not None:
        write_plant_outputs(plant, out)
    return plant


def run_twin(
    broker: str,
    scenario: str | Path | ScenarioConfig = "light",
    *,
    seed: int = 42,
    hours: float | None = None,
    control: bool = True,
    solver: str | None = None,
    stale_after_s: float = 180.0,
    out: str | Path | None = None,
    manufacturer: str = "agentev",
    epoch: datetime = EPOCH,
    idle_timeout_s: float = 120.0,
    **kwargs: Any,
) -> Twin:
    """The twin side on a broker, until the plant's last minute; outputs go to ``out``."""
    with connect(broker, f"agentev-twin-{manufacturer}") as link:
        twin = Twin(
            link,
            _model(scenario, seed, hours, None),
            make_protocol(manufacturer=manufacturer, epoch=epoch),
            control=control,
            solver=solver,
            stale_after_s=stale_after_s,
            **kwargs,
        )
        twin.serve(idle_timeout_s)
    if out is not None:
        write_twin_outputs(twin, out)
    return twin


def run_replay(
    broker: str,
    path: str | Path,
    scenario: str | Path | ScenarioConfig = "light",
    *,
    seed: int = 42,
    hours: float | None = None,
    options: PlantOptions | None = None,
    out: str | Path | None = None,
    manufacturer: str = "agentev",
    epoch: datetime = EPOCH,
    bus: InProcessBus | None = None,
) -> Plant:
    """Publish a recorded ``timeseries.csv`` on a broker as the fleet's states."""
    with connect(broker, f"agentev-plant-{manufacturer}", bus) as link:
        replay = Replay(
            link,
            path,
            _model(scenario, seed, hours, None),
            options,
            make_protocol(manufacturer=manufacturer, epoch=epoch),
        )
        plant = replay.run()
    if out is not None:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "plant.json").write_text(json.dumps(plant.summary(), indent=2) + "\n")
    return plant
