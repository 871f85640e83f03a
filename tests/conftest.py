"""Shared runs: each is simulated once per test session and checked by many tests."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import settings

from agentev.model import FactoryModel
from agentev.scenario import SCENARIO_DIR
from tests.helpers import run_model
from tests.mqtt_broker import mqtt_broker  # noqa: F401 - the fixture, for every test file

# CI explores the same hypothesis examples on every run (a red run is reproducible);
# `HYPOTHESIS_PROFILE=explore pytest` draws new ones.
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("explore", derandomize=False, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session", autouse=True)
def oracle_cache(tmp_path_factory):
    """Oracle plans are cached in a fresh directory: every test run solves them itself."""
    old = os.environ.get("AGENTEV_CACHE_DIR")
    os.environ["AGENTEV_CACHE_DIR"] = str(tmp_path_factory.mktemp("oracle-cache"))
    yield
    if old is None:
        os.environ.pop("AGENTEV_CACHE_DIR", None)
    else:
        os.environ["AGENTEV_CACHE_DIR"] = old


@dataclass
class Run:
    """A finished model and the directory its outputs were written to."""

    model: FactoryModel
    out: Path


def with_failing_chargers(text: str, mtbf_h: float = 1.0, mttr_h: float = 0.5) -> str:
    """Scenario text with every charger failing often (mtbf_h / mttr_h on each entry)."""
    text = re.sub(r",\s*mtbf_h = [0-9.]+,\s*mttr_h = [0-9.]+", "", text)
    new, n = re.subn(
        r"(queue_slots = \d+)( })", rf"\1, mtbf_h = {mtbf_h}, mttr_h = {mttr_h}\2", text
    )
    assert n >= 1
    return new


def _run(tmp_path_factory, name: str, **kwargs) -> Run:
    out = tmp_path_factory.mktemp(name)
    return Run(run_model(out, **kwargs), out)


@pytest.fixture(scope="session")
def light_fcfs_day(tmp_path_factory) -> Run:
    """The README's run: light, fcfs, seed 42, 24 h."""
    return _run(tmp_path_factory, "light-fcfs", scenario="light", strategy="fcfs", rng=42)


@pytest.fixture(scope="session")
def light_uncontrolled_day(tmp_path_factory) -> Run:
    return _run(
        tmp_path_factory, "light-uncontrolled", scenario="light", strategy="uncontrolled", rng=42
    )


@pytest.fixture(scope="session")
def heavy_tight_limit(tmp_path_factory) -> Run:
    """Heavy with a grid limit only 6 kW above the highest base load, and many charges."""
    return _run(
        tmp_path_factory,
        "heavy-tight",
        scenario="heavy",
        strategy="fcfs",
        rng=7,
        duration_h=8,
        charge_threshold=0.6,
        grid_limit_kw=36.0,
    )


@pytest.fixture(scope="session")
def flexible_lead_acid_day(tmp_path_factory) -> Run:
    """Flexible: Li-ion AGVs and lead-acid forklifts, uncontrolled charging."""
    return _run(
        tmp_path_factory,
        "flexible",
        scenario="flexible",
        strategy="uncontrolled",
        rng=3,
        charge_threshold=0.45,
    )


@pytest.fixture(scope="session")
def failing_chargers_toml(tmp_path_factory) -> Path:
    """light.toml with mtbf_h = 1.0, mttr_h = 0.5 on every charger."""
    path = tmp_path_factory.mktemp("scenario") / "light-failing.toml"
    path.write_text(with_failing_chargers((SCENARIO_DIR / "light.toml").read_text()))
    return path


def _failing_run(tmp_path_factory, toml: Path, strategy: str) -> Run:
    """Light with chargers failing about hourly, for 10 h with frequent charging."""
    return _run(
        tmp_path_factory,
        f"failing-{strategy}",
        scenario=toml,
        strategy=strategy,
        rng=11,
        duration_h=10 if strategy != "intelligent" else 8,
        charge_threshold=0.6,
    )


@pytest.fixture(scope="session")
def failing_chargers_fcfs(tmp_path_factory, failing_chargers_toml) -> Run:
    return _failing_run(tmp_path_factory, failing_chargers_toml, "fcfs")


@pytest.fixture(scope="session")
def failing_chargers_uncontrolled(tmp_path_factory, failing_chargers_toml) -> Run:
    return _failing_run(tmp_path_factory, failing_chargers_toml, "uncontrolled")


@pytest.fixture(scope="session")
def failing_chargers_negotiation(tmp_path_factory, failing_chargers_toml) -> Run:
    return _failing_run(tmp_path_factory, failing_chargers_toml, "negotiation")


@pytest.fixture(scope="session")
def heavy_negotiation_day(tmp_path_factory) -> Run:
    """Heavy, negotiated slots, a whole day."""
    return _run(
        tmp_path_factory, "heavy-negotiation", scenario="heavy", strategy="negotiation", rng=42
    )


@pytest.fixture(scope="session")
def light_intelligent(tmp_path_factory) -> Run:
    """The twin controller's rolling plan through the morning shift start."""
    return _run(
        tmp_path_factory,
        "light-intelligent",
        scenario="light",
        strategy="intelligent",
        rng=42,
        duration_h=8,
    )


@pytest.fixture(scope="session")
def heavy_oracle(tmp_path_factory) -> Run:
    """The whole-run perfect-knowledge plan, executed by dispatch (3 h of the heavy
    scenario: its relax-and-fix plan solves in about a second)."""
    return _run(
        tmp_path_factory,
        "heavy-oracle",
        scenario="heavy",
        strategy="hindsight",
        rng=42,
        duration_h=3,
    )


@pytest.fixture(scope="session")
def failing_chargers_intelligent(tmp_path_factory, failing_chargers_toml) -> Run:
    return _failing_run(tmp_path_factory, failing_chargers_toml, "intelligent")


@pytest.fixture(
    scope="session",
    params=[
        "light_intelligent",
        "heavy_oracle",
        "failing_chargers_intelligent",
        "light_fcfs_day",
        "light_uncontrolled_day",
        "heavy_tight_limit",
        "flexible_lead_acid_day",
        "failing_chargers_fcfs",
        "failing_chargers_uncontrolled",
        "heavy_negotiation_day",
        "failing_chargers_negotiation",
    ],
)
def any_run(request) -> Run:
    """Each shared run in turn."""
    return request.getfixturevalue(request.param)
