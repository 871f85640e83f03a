"""Scenario loading and validation: clear errors naming file, field, value and what is allowed."""

from __future__ import annotations

import tomllib

import pytest

from agentev.config import ScenarioConfig
from agentev.model import FactoryModel
from agentev.scenario import (
    SCENARIO_DIR,
    ScenarioError,
    apply_overrides,
    available_scenarios,
    load_scenario,
    parse_scenario,
)

LIGHT = (SCENARIO_DIR / "light.toml").read_text()
ROW_1 = "#..............................#"


@pytest.mark.parametrize("name", ["light", "heavy", "flexible", "continuous", "heavy-tou"])
def test_builtin_scenario_loads_and_builds_a_model(name):
    assert name in available_scenarios()
    cfg = load_scenario(name)
    assert isinstance(cfg, ScenarioConfig)
    assert cfg.name == name
    assert cfg.source == f"{name}.toml"
    model = FactoryModel(name, rng=1, duration_h=1)
    assert len(model.vehicles) == cfg.num_vehicles
    assert len(model.chargers) == cfg.num_chargers


def test_scenario_loads_by_name_or_path_alike():
    by_name = load_scenario("light")
    by_path = load_scenario(SCENARIO_DIR / "light.toml")
    assert by_name == by_path
    assert load_scenario(str(SCENARIO_DIR / "light.toml")) == by_name


def _edit(old: str, new: str) -> str:
    assert LIGHT.count(old) >= 1, old
    return LIGHT.replace(old, new, 1)


BAD_FILES = {
    "wrong_type": (
        _edit("capacity_kwh = 5.0", 'capacity_kwh = "five"'),
        ["fleet.vehicle_types.agv.capacity_kwh", "'five'", "must be a number > 0"],
    ),
    "negative_capacity": (
        _edit("capacity_kwh = 5.0", "capacity_kwh = -5.0"),
        ["fleet.vehicle_types.agv.capacity_kwh", "-5.0", "must be a number > 0"],
    ),
    "unknown_strategy": (
        _edit('strategy = "fcfs"', 'strategy = "nope"'),
        ["scenario.strategy", "'nope'", "fcfs", "uncontrolled"],
    ),
    # WS01 is at (col 3, row 1): walls left and right of it close it in.
    "walled_in_station": (
        _edit(ROW_1, "#.#.#" + ROW_1[5:]),
        ["layout.stations[0]", "'WS01'", "unreachable from the parking area"],
    ),
    "station_on_a_wall": (
        _edit('{ id = "WS01", col = 3, row = 1 }', '{ id = "WS01", col = 3, row = 2 }'),
        ["layout.stations[0]", "(3, 2)", "must be on an aisle cell '.'", "'#'"],
    ),
    "charger_in_an_enclosed_area": (
        _edit(ROW_1, "#.#.#" + ROW_1[5:])
        .replace('{ id = "C1", col = 17, row = 11', '{ id = "C1", col = 3, row = 1', 1)
        .replace('{ id = "WS01", col = 3, row = 1 },\n', "", 1),
        ["layout.chargers[0]", "'C1'", "unreachable from the parking area"],
    ),
    "unknown_field": (
        _edit('name = "light"', 'name = "light"\ncolour = "red"'),
        ["scenario.colour", "unknown field", "allowed in scenario", "strategy", "num_chargers"],
    ),
    "unknown_field_in_a_charger": (
        _edit("queue_slots = 2 }", "queue_slots = 2, mtbf = 3.0 }"),
        ["layout.chargers[0].mtbf", "unknown field", "mtbf_h", "mttr_h"],
    ),
    "more_vehicles_than_parking_places": (
        _edit('{ type = "agv", count = 8 }', '{ type = "agv", count = 15 }'),
        ["num_vehicles", "15", "must be <= 14", "parking places"],
    ),
    "no_chargers_in_use": (
        _edit("num_chargers = 3", "num_chargers = 0"),
        ["scenario.num_chargers", "0", "must be an integer >= 1"],
    ),
    "more_chargers_than_sites": (
        _edit("num_chargers = 3", "num_chargers = 6"),
        ["num_chargers", "6", "between 1 and 5"],
    ),
    "fractional_integer": (
        _edit("num_chargers = 3", "num_chargers = 2.5"),
        ["scenario.num_chargers", "2.5", "must be an integer"],
    ),
    "efficiency_above_one": (
        _edit("charging_efficiency = 0.92", "charging_efficiency = 1.5"),
        ["fleet.vehicle_types.agv.charging_efficiency", "1.5", "<= 1"],
    ),
    "unknown_chemistry": (
        _edit('chemistry = "li-ion"', 'chemistry = "nimh"'),
        ["fleet.vehicle_types.agv.chemistry", "'nimh'", "li-ion", "lead-acid"],
    ),
    "min_soc_not_below_max_soc": (
        _edit("min_soc = 0.2", "min_soc = 1.0"),
        ["fleet.vehicle_types.agv.min_soc", "1.0", "must be below max_soc"],
    ),
    "short_price_list": (
        _edit("energy_price_per_kwh = [0.1052, ", "energy_price_per_kwh = ["),
        ["tariff.energy_price_per_kwh", "must be a list of 24 numbers"],
    ),
    "missing_field": (
        _edit("cell_size_m = 6.0\n", ""),
        ["layout.cell_size_m", "is missing"],
    ),
    "tail_not_a_multiple_of_the_period": (
        _edit("tail_period_min = 60.0", "tail_period_min = 50.0"),
        ["controller.tail_period_min", "50.0", "a multiple of period_min = 15"],
    ),
    "shift_ending_before_it_starts": (
        _edit("{ start_h = 0.0, end_h = 6.0,", "{ start_h = 6.0, end_h = 2.0,"),
        ["tasks.shifts[0].end_h", "2.0", "must be greater than start_h = 6"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_scenario_file_raises_an_error_naming_file_field_value_and_allowed(case, tmp_path):
    text, expected = BAD_FILES[case]
    path = tmp_path / f"bad-{case}.toml"
    path.write_text(text)
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    message = str(err.value)
    assert message.startswith(f"bad-{case}.toml: "), message
    for part in expected:
        assert part in message, (part, message)


def test_file_that_is_not_toml_is_named_in_the_error(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("[scenario\nname = ")
    with pytest.raises(ScenarioError, match=r"^broken\.toml: not valid TOML"):
        load_scenario(path)


def test_missing_scenario_file_or_name_is_an_error(tmp_path):
    with pytest.raises(ScenarioError, match="nothere.toml.*does not exist"):
        load_scenario(tmp_path / "nothere.toml")
    with pytest.raises(ScenarioError) as err:
        load_scenario("missing")
    assert "'missing'" in str(err.value)
    for name in ("light", "heavy", "flexible", "continuous"):
        assert name in str(err.value)


def test_parse_scenario_names_the_given_source():
    data = tomllib.loads(_edit("capacity_kwh = 5.0", "capacity_kwh = 0"))
    with pytest.raises(ScenarioError, match=r"^plant\.toml: fleet\.vehicle_types\.agv\.capa"):
        parse_scenario(data, source="plant.toml")
    assert parse_scenario(tomllib.loads(LIGHT), source="x.toml").source == "x.toml"


KEYWORD_ERRORS = [
    ({"num_chargers": 0}, ["num_chargers = 0", "must be an integer >= 1"]),
    ({"num_chargers": 6}, ["num_chargers = 6", "between 1 and 5"]),
    ({"num_vehicles": 0}, ["num_vehicles = 0", "must be an integer >= 1"]),
    ({"num_vehicles": 15}, ["num_vehicles = 15", "must be <= 14"]),
    ({"num_vehicles": 2.5}, ["num_vehicles = 2.5", "must be an integer"]),
    ({"strategy": "nope"}, ["strategy = 'nope'", "fcfs", "uncontrolled"]),
    ({"duration_h": -1}, ["duration_h = -1", "must be a number > 0"]),
    ({"charge_threshold": 1.5}, ["charge_threshold = 1.5", "<= 1"]),
    ({"grid_limit_kw": 0.0}, ["grid_limit_kw = 0.0", "must be a number > 0"]),
    ({"grid_limit_kw": "high"}, ["grid_limit_kw = 'high'", "must be a number"]),
    ({"period_min": 0.5}, ["period_min = 0.5", ">= 1"]),
]


@pytest.mark.parametrize(("kwargs", "expected"), KEYWORD_ERRORS, ids=lambda v: str(v))
def test_bad_keyword_raises_an_error_naming_parameter_value_and_allowed(kwargs, expected):
    with pytest.raises(ScenarioError) as err:
        FactoryModel("light", rng=1, **kwargs)
    for part in expected:
        assert part in str(err.value), (part, str(err.value))


def test_unknown_override_is_rejected():
    with pytest.raises(ScenarioError, match="colour = 'red': unknown parameter"):
        apply_overrides(load_scenario("light"), colour="red")


def test_keywords_override_the_scenario_and_none_keeps_it():
    base = load_scenario("heavy")
    cfg = apply_overrides(
        base, num_vehicles=6, num_chargers=2, charge_threshold=0.5, grid_limit_kw=None
    )
    assert cfg.num_vehicles == 6
    # the type mix is kept: 8 AGVs and 4 tuggers scale to 4 and 2
    assert [(g.vehicle_type, g.count) for g in cfg.fleet] == [("agv", 4), ("tugger", 2)]
    assert cfg.num_chargers == 2
    assert cfg.charge_threshold == 0.5
    assert cfg.site.grid_limit_kw == base.site.grid_limit_kw == 40.0
