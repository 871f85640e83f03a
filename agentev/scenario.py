"""Scenario files: TOML in, a validated :class:`~agentev.config.ScenarioConfig` out.

Every field is checked for its type and range; unknown keys are rejected so that a typo does
not silently fall back to a default. Errors name the file, the field, the value and what is
allowed, e.g. ``light.toml: fleet.vehicle_types.agv.capacity_kwh = -5.0: must be a number > 0``.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from collections import deque
from pathlib import Path
from typing import Any

from agentev.config import (
    ARRIVAL_PROCESSES,
    CHEMISTRIES,
    ChargerSpec,
    ControllerConfig,
    DemandCharge,
    FleetGroup,
    LayoutConfig,
    ScenarioConfig,
    Shift,
    SiteConfig,
    StationSpec,
    TariffConfig,
    TaskConfig,
    VehicleType,
)
from agentev.forecasting import FORECASTER_NAMES as FORECASTERS

SCENARIO_DIR = Path(__file__).resolve().parent.parent / "scenarios"
DEFAULT_SCENARIO = "light"
SOLVERS_HINT = "a Pyomo solver name such as 'highs', 'glpk', 'cbc'"


class ScenarioError(ValueError):
    """A scenario file or parameter is invalid; the message says which field and why."""


def available_scenarios() -> list[str]:
    """Names of the built-in scenarios (files in ``scenarios/``)."""
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.toml"))


def scenario_path(name_or_path: str | Path) -> Path:
    """Resolve a built-in scenario name or a file path to a file.

    Raises:
        ScenarioError: if neither a built-in name nor an existing file.
    """
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise ScenarioError(f"scenario file {str(path)!r} does not exist")
        return path
    candidate = SCENARIO_DIR / f"{name_or_path}.toml"
    if not candidate.is_file():
        raise ScenarioError(
            f"scenario = {str(name_or_path)!r}: unknown scenario; allowed: "
            f"{', '.join(available_scenarios())} or a path to a .toml file"
        )
    return candidate


def load_scenario(name_or_path: str | Path = DEFAULT_SCENARIO) -> ScenarioConfig:
    """Load and validate a scenario by built-in name or file path.

    Args:
        name_or_path: ``"light"``, ``"heavy"``, ``"flexible"``, ``"continuous"`` or a path.

    Returns:
        The validated scenario.

    Raises:
        ScenarioError: naming the file, the field, the value and what is allowed.
    """
    path = scenario_path(name_or_path)
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path.name}: not valid TOML: {exc}") from exc
    return parse_scenario(data, source=path.name)


class _Reader:
    """Reads one TOML table with its dotted path, for precise error messages."""

    def __init__(self, data: Any, path: str, source: str) -> None:
        if not isinstance(data, dict):
            raise ScenarioError(f"{source}: {path or 'file'} = {data!r}: must be a table")
        self.data = data
        self.path = path
        self.source = source
        self.used: set[str] = set()

    def field(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def fail(self, key: str, value: Any, allowed: str) -> ScenarioError:
        return ScenarioError(f"{self.source}: {self.field(key)} = {value!r}: {allowed}")

    def has(self, key: str) -> bool:
        return key in self.data

    def raw(self, key: str, default: Any = ...) -> Any:
        self.used.add(key)
        if key not in self.data:
            if default is ...:
                raise ScenarioError(f"{self.source}: {self.field(key)} is missing")
            return default
        return self.data[key]

    def table(self, key: str, default: Any = ...) -> _Reader:
        return _Reader(self.raw(key, default), self.field(key), self.source)

    def tables(self, key: str) -> list[_Reader]:
        value = self.raw(key)
        if not isinstance(value, list) or not value:
            raise self.fail(key, value, "must be a non-empty array of tables")
        return [_Reader(v, f"{self.field(key)}[{i}]", self.source) for i, v in enumerate(value)]

    def number(
        self,
        key: str,
        default: Any = ...,
        *,
        low: float | None = None,
        high: float | None = None,
        low_open: bool = False,
    ) -> float:
        value = self.raw(key, default)
        return check_number(
            value, self.field(key), low=low, high=high, low_open=low_open, source=self.source
        )

    def integer(self, key: str, default: Any = ..., *, low: int | None = None) -> int:
        value = self.raw(key, default)
        return check_int(value, self.field(key), low=low, source=self.source)

    def string(self, key: str, default: Any = ..., *, choices: tuple[str, ...] = ()) -> str:
        value = self.raw(key, default)
        if not isinstance(value, str) or (choices and value not in choices):
            allowed = f"one of {', '.join(choices)}" if choices else "must be a string"
            raise self.fail(key, value, allowed)
        return value

    def numbers(self, key: str, length: int, *, low: float = 0.0) -> tuple[float, ...]:
        value = self.raw(key)
        if not isinstance(value, list) or len(value) != length:
            raise self.fail(key, value, f"must be a list of {length} numbers")
        return tuple(
            check_number(v, f"{self.field(key)}[{i}]", low=low, source=self.source)
            for i, v in enumerate(value)
        )

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise ScenarioError(
                f"{self.source}: {self.field(unknown[0])}: unknown field; allowed in "
                f"{self.path or 'the top level'}: {', '.join(sorted(self.used))}"
            )


def check_number(
    value: Any,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    source: str = "parameter",
) -> float:
    """Check that ``value`` is a finite real number within bounds.

    Raises:
        ScenarioError: naming the field, the value and the allowed range.
    """
    bounds = []
    if low is not None:
        bounds.append(f"{'>' if low_open else '>='} {low:g}")
    if high is not None:
        bounds.append(f"<= {high:g}")
    allowed = "must be a number" + (" " + " and ".join(bounds) if bounds else "")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ScenarioError(f"{source}: {name} = {value!r}: {allowed}")
    if low is not None and (value < low or (low_open and value == low)):
        raise ScenarioError(f"{source}: {name} = {value!r}: {allowed}")
    if high is not None and value > high:
        raise ScenarioError(f"{source}: {name} = {value!r}: {allowed}")
    return float(value)


def check_quantile(value: Any, name: str, source: str = "parameter") -> float:
    """Check a robust-planning quantile: a number in (0.5, 1).

    Raises:
        ScenarioError: naming the field, the value and the allowed range.
    """
    allowed = "must be a number > 0.5 and < 1 (an upper quantile, e.g. 0.9)"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.5 < value < 1:
        raise ScenarioError(f"{source}: {name} = {value!r}: {allowed}")
    return float(value)


def check_int(value: Any, name: str, *, low: int | None = None, source: str = "parameter") -> int:
    """Check that ``value`` is an integer >= ``low``.

    Raises:
        ScenarioError: naming the field, the value and the allowed range.
    """
    allowed = "must be an integer" + (f" >= {low}" if low is not None else "")
    if isinstance(value, bool) or not isinstance(value, int):
        raise ScenarioError(f"{source}: {name} = {value!r}: {allowed}")
    if low is not None and value < low:
        raise ScenarioError(f"{source}: {name} = {value!r}: {allowed}")
    return value


def _vehicle_type(name: str, r: _Reader) -> VehicleType:
    defaults = VehicleType()
    power = r.table("power_kw")
    vt = VehicleType(
        name=name,
        capacity_kwh=r.number("capacity_kwh", defaults.capacity_kwh, low=0.0, low_open=True),
        chemistry=r.string("chemistry", defaults.chemistry, choices=CHEMISTRIES),
        speed_mps=r.number("speed_mps", defaults.speed_mps, low=0.0, low_open=True),
        max_charge_power_kw=r.number(
            "max_charge_power_kw", defaults.max_charge_power_kw, low=0.0, low_open=True
        ),
        charging_efficiency=r.number(
            "charging_efficiency", defaults.charging_efficiency, low=0.0, high=1.0, low_open=True
        ),
        min_soc=r.number("min_soc", defaults.min_soc, low=0.0, high=1.0),
        max_soc=r.number("max_soc", defaults.max_soc, low=0.0, high=1.0, low_open=True),
        cccv_knee_soc=r.number("cccv_knee_soc", defaults.cccv_knee_soc, low=0.0, high=1.0),
        cccv_floor_fraction=r.number(
            "cccv_floor_fraction", defaults.cccv_floor_fraction, low=0.0, high=1.0, low_open=True
        ),
        drive_empty_kw=power.number("drive_empty", low=0.0),
        drive_loaded_kw=power.number("drive_loaded", low=0.0),
        handling_kw=power.number("handling", low=0.0),
        idle_kw=power.number("idle", low=0.0),
        handling_min=r.number("handling_min", defaults.handling_min, low=0.0),
    )
    power.done()
    r.done()
    if vt.min_soc >= vt.max_soc:
        raise r.fail("min_soc", vt.min_soc, f"must be below max_soc = {vt.max_soc}")
    # The charging power floor must exceed standby consumption, or a charge never ends.
    floor_kw = vt.max_charge_power_kw * vt.cccv_floor_fraction * vt.charging_efficiency
    if floor_kw <= vt.idle_kw:
        raise r.fail(
            "cccv_floor_fraction",
            vt.cccv_floor_fraction,
            f"battery power at full ({floor_kw:g} kW) must exceed idle power ({vt.idle_kw:g} kW)",
        )
    return vt


def _layout(r: _Reader) -> LayoutConfig:
    cell_size_m = r.number("cell_size_m", low=0.0, low_open=True)
    raw_map = r.string("map")
    rows = tuple(line.rstrip() for line in raw_map.strip("\n").splitlines())
    width = max((len(row) for row in rows), default=0)
    if not rows or width == 0:
        raise r.fail("map", raw_map, "must hold at least one row of '#', '.', 'P'")
    rows = tuple(row.ljust(width, "#") for row in rows)
    for i, row in enumerate(rows):
        bad = set(row) - set("#.P")
        if bad:
            raise r.fail(f"map row {i}", row, "may only contain '#' (blocked), '.' (aisle), 'P'")
    stations: list[StationSpec] = []
    for s in r.tables("stations"):
        stations.append(
            StationSpec(id=s.string("id"), col=s.integer("col", low=0), row=s.integer("row", low=0))
        )
        s.done()
    chargers: list[ChargerSpec] = []
    for c in r.tables("chargers"):
        chargers.append(
            ChargerSpec(
                id=c.string("id"),
                col=c.integer("col", low=0),
                row=c.integer("row", low=0),
                ports=c.integer("ports", 1, low=1),
                power_kw=c.number("power_kw", 3.3, low=0.0, low_open=True),
                queue_slots=c.integer("queue_slots", 2, low=0),
                mtbf_h=c.number("mtbf_h", 0.0, low=0.0),
                mttr_h=c.number("mttr_h", 1.0, low=0.0, low_open=True),
            )
        )
        c.done()
    r.done()
    layout = LayoutConfig(
        cell_size_m=cell_size_m, rows=rows, stations=tuple(stations), chargers=tuple(chargers)
    )
    _check_layout(layout, r)
    return layout


def _check_layout(layout: LayoutConfig, r: _Reader) -> None:
    rows = layout.rows
    height, width = len(rows), len(rows[0])
    ids: set[str] = set()
    docks: dict[tuple[int, int], str] = {}
    for kind, items in (("stations", layout.stations), ("chargers", layout.chargers)):
        for i, item in enumerate(items):
            name = f"{kind}[{i}]"
            if item.id in ids:
                raise r.fail(f"{name}.id", item.id, "must be unique among stations and chargers")
            ids.add(item.id)
            if not (0 <= item.row < height and 0 <= item.col < width):
                raise r.fail(
                    f"{name}", (item.col, item.row), f"col must be < {width} and row < {height}"
                )
            if rows[item.row][item.col] != ".":
                raise r.fail(
                    f"{name}",
                    (item.col, item.row),
                    f"must be on an aisle cell '.', found {rows[item.row][item.col]!r}",
                )
            if (item.col, item.row) in docks:
                raise r.fail(f"{name}", (item.col, item.row), "shares its cell with another dock")
            docks[(item.col, item.row)] = item.id
    parking = [(c, y) for y, row in enumerate(rows) for c, ch in enumerate(row) if ch == "P"]
    if not parking:
        raise r.fail("map", "", "must contain at least one parking place 'P'")
    reached = _reachable(rows, parking[0])
    for kind, items in (("stations", layout.stations), ("chargers", layout.chargers)):
        for i, item in enumerate(items):
            if (item.col, item.row) not in reached:
                raise r.fail(
                    f"{kind}[{i}]",
                    item.id,
                    f"unreachable from the parking area at (col, row) = {parking[0]}",
                )
    for cell in parking:
        if cell not in reached:
            raise r.fail("map", cell, "parking place unreachable from the other parking places")


def _reachable(rows: tuple[str, ...], start: tuple[int, int]) -> set[tuple[int, int]]:
    seen = {start}
    queue = deque([start])
    height, width = len(rows), len(rows[0])
    while queue:
        c, y = queue.popleft()
        for dc, dy in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            nc, ny = c + dc, y + dy
            if 0 <= nc < width and 0 <= ny < height and rows[ny][nc] != "#":
                if (nc, ny) not in seen:
                    seen.add((nc, ny))
                    queue.append((nc, ny))
    return seen


def _tasks(r: _Reader) -> TaskConfig:
    shifts = []
    for s in r.tables("shifts"):
        start = s.number("start_h", low=0.0, high=24.0)
        end = s.number("end_h", low=0.0, high=24.0)
        if end <= start:
            raise s.fail("end_h", end, f"must be greater than start_h = {start:g}")
        shifts.append(Shift(start, end, s.number("rate_per_h", low=0.0)))
        s.done()
    cfg = TaskConfig(
        process=r.string("process", choices=ARRIVAL_PROCESSES),
        shifts=tuple(shifts),
        due_window_min=r.number("due_window_min", 30.0, low=0.0, low_open=True),
        flexible_sigma=r.number("flexible_sigma", 0.5, low=0.0),
    )
    r.done()
    return cfg


def _demand_charge(r: _Reader) -> DemandCharge:
    start = r.number("start_h", 0.0, low=0.0, high=24.0)
    end = r.number("end_h", 24.0, low=0.0, high=24.0)
    if end <= start:
        raise r.fail("end_h", end, f"must be greater than start_h = {start:g}")
    charge = DemandCharge(r.string("name"), r.number("rate_per_kw_month", low=0.0), start, end)
    r.done()
    return charge


def _controller(r: _Reader) -> ControllerConfig:
    d = ControllerConfig()
    cfg = ControllerConfig(
        prediction_horizon_h=r.number(
            "prediction_horizon_h", d.prediction_horizon_h, low=0.0, low_open=True
        ),
        optimization_interval_h=r.number(
            "optimization_interval_h", d.optimization_interval_h, low=0.0, low_open=True
        ),
        period_min=r.number("period_min", d.period_min, low=1.0),
        tail_period_min=r.number("tail_period_min", d.tail_period_min, low=1.0),
        alpha_energy=r.number("alpha_energy", d.alpha_energy, low=0.0),
        alpha_downtime=r.number("alpha_downtime", d.alpha_downtime, low=0.0),
        alpha_utilization=r.number("alpha_utilization", d.alpha_utilization, low=0.0),
        solver=r.string("solver", d.solver),
        forecaster=r.string("forecaster", d.forecaster, choices=FORECASTERS),
        forecast_quantile=(
            check_quantile(r.raw("forecast_quantile"), r.field("forecast_quantile"), r.source)
            if r.has("forecast_quantile")
            else None
        ),
        warmup_days=r.integer("warmup_days", d.warmup_days, low=1),
        task_log=r.string("task_log") if r.has("task_log") else None,
    )
    ratio = cfg.tail_period_min / cfg.period_min
    if abs(ratio - round(ratio)) > 1e-9:
        raise r.fail(
            "tail_period_min", cfg.tail_period_min, f"a multiple of period_min = {cfg.period_min}"
        )
    r.done()
    return cfg


def parse_scenario(data: dict[str, Any], source: str = "scenario") -> ScenarioConfig:
    """Validate a scenario given as a parsed TOML dictionary.

    Raises:
        ScenarioError: naming the source, the field, the value and what is allowed.
    """
    from agentev.strategies import DEPRECATED_STRATEGIES, STRATEGIES, strategy_name

    top = _Reader(data, "", source)
    meta = top.table("scenario")
    fleet = top.table("fleet")
    types_r = fleet.table("vehicle_types")
    vehicle_types = {}
    for name in types_r.data:
        vehicle_types[name] = _vehicle_type(name, types_r.table(name))
    if not vehicle_types:
        raise fleet.fail("vehicle_types", {}, "must define at least one vehicle type")
    groups = []
    for g in fleet.tables("groups"):
        vtype = g.string("type", choices=tuple(vehicle_types))
        groups.append(FleetGroup(vtype, g.integer("count", low=0)))
        g.done()
    soc_low = fleet.number("initial_soc_min", 0.5, low=0.0, high=1.0)
    soc_high = fleet.number("initial_soc_max", 1.0, low=0.0, high=1.0)
    if soc_high < soc_low:
        raise fleet.fail("initial_soc_max", soc_high, f"must be >= initial_soc_min = {soc_low}")
    threshold = fleet.number("charge_threshold", 0.3, low=0.0, high=1.0)
    fleet.done()

    layout = _layout(top.table("layout"))
    site_r = top.table("site")
    limit = site_r.raw("grid_limit_kw", None)
    site = SiteConfig(
        base_load_kw=site_r.numbers("base_load_kw", 24),
        grid_limit_kw=None
        if limit is None
        else check_number(limit, "site.grid_limit_kw", low=0.0, low_open=True, source=source),
    )
    site_r.done()
    tar = top.table("tariff")
    tariff = TariffConfig(
        name=tar.string("name"),
        source=tar.string("source"),
        currency=tar.string("currency"),
        energy_price_per_kwh=tar.numbers("energy_price_per_kwh", 24),
        demand_charges=tuple(_demand_charge(d) for d in tar.tables("demand_charges")),
    )
    tar.done()
    tasks = _tasks(top.table("tasks"))
    controller = _controller(top.table("controller", {}))

    cfg = ScenarioConfig(
        name=meta.string("name"),
        source=source,
        duration_h=meta.number("duration_h", low=0.0, low_open=True),
        strategy=strategy_name(
            meta.string("strategy", "fcfs", choices=(*STRATEGIES, *DEPRECATED_STRATEGIES))
        ),
        charge_threshold=threshold,
        initial_soc_range=(soc_low, soc_high),
        vehicle_types=vehicle_types,
        fleet=tuple(groups),
        num_chargers=check_int(
            meta.raw("num_chargers", len(layout.chargers)),
            "scenario.num_chargers",
            low=1,
            source=source,
        ),
        layout=layout,
        tasks=tasks,
        site=site,
        tariff=tariff,
        controller=controller,
        message_latency_s=meta.number("message_latency_s", 1.0, low=0.0),
    )
    meta.done()
    top.done()
    _check_counts(cfg, source)
    return cfg


def _check_counts(cfg: ScenarioConfig, source: str) -> None:
    if cfg.num_vehicles < 1:
        raise ScenarioError(f"{source}: num_vehicles = {cfg.num_vehicles}: must be >= 1")
    parking = sum(row.count("P") for row in cfg.layout.rows)
    if cfg.num_vehicles > parking:
        raise ScenarioError(
            f"{source}: num_vehicles = {cfg.num_vehicles}: must be <= {parking}, "
            "the number of parking places 'P' on the map"
        )
    if not 1 <= cfg.num_chargers <= len(cfg.layout.chargers):
        raise ScenarioError(
            f"{source}: num_chargers = {cfg.num_chargers}: must be between 1 and "
            f"{len(cfg.layout.chargers)}, the number of charger sites on the map"
        )
    low, high = cfg.initial_soc_range
    for vt in cfg.vehicle_types.values():
        if not vt.min_soc <= cfg.charge_threshold <= vt.max_soc:
            raise ScenarioError(
                f"{source}: charge_threshold = {cfg.charge_threshold!r}: must lie within "
                f"[min_soc, max_soc] = [{vt.min_soc}, {vt.max_soc}] of vehicle type {vt.name!r}"
            )
        if not (vt.min_soc <= low and high <= vt.max_soc):
            raise ScenarioError(
                f"{source}: fleet.initial_soc_min/max = ({low}, {high}): must lie within "
                f"[min_soc, max_soc] = [{vt.min_soc}, {vt.max_soc}] of vehicle type {vt.name!r}"
            )


def _scale_fleet(fleet: tuple[FleetGroup, ...], n: int) -> tuple[FleetGroup, ...]:
    """Scale group counts to ``n`` vehicles, keeping the type mix (largest remainder)."""
    total = sum(g.count for g in fleet) or 1
    exact = [g.count * n / total for g in fleet]
    counts = [math.floor(x) for x in exact]
    order = sorted(range(len(fleet)), key=lambda i: (counts[i] - exact[i], i))
    for i in order[: n - sum(counts)]:
        counts[i] += 1
    return tuple(FleetGroup(g.vehicle_type, c) for g, c in zip(fleet, counts, strict=True))


CONTROLLER_KEYS = tuple(f.name for f in dataclasses.fields(ControllerConfig))


def apply_overrides(cfg: ScenarioConfig, **overrides: Any) -> ScenarioConfig:
    """Return ``cfg`` with explicit keyword parameters applied (None means keep).

    Accepted keys: ``num_vehicles``, ``num_chargers``, ``strategy``, ``duration_h``,
    ``charge_threshold``, ``grid_limit_kw``, ``message_latency_s`` and the controller keys
    (``alpha_energy``, ``alpha_downtime``, ``alpha_utilization``, ``prediction_horizon_h``,
    ``optimization_interval_h``, ``period_min``, ``solver``, ``forecaster``).

    Raises:
        ScenarioError: for a bad value, naming the parameter and what is allowed.
    """
    from agentev.strategies import STRATEGIES, strategy_name

    src = "parameter"
    changes: dict[str, Any] = {}
    controller: dict[str, Any] = {}
    for key, value in overrides.items():
        if value is None:
            continue
        if key == "num_vehicles":
            n = check_int(value, key, low=1, source=src)
            changes["fleet"] = _scale_fleet(cfg.fleet, n)
        elif key == "num_chargers":
            changes[key] = check_int(value, key, low=1, source=src)
        elif key == "strategy":
            value = strategy_name(value) if isinstance(value, str) else value
            if value not in STRATEGIES:
                raise ScenarioError(
                    f"{src}: strategy = {value!r}: unknown strategy; allowed: "
                    f"{', '.join(STRATEGIES)}"
                )
            changes[key] = value
        elif key == "duration_h":
            changes[key] = check_number(value, key, low=0.0, low_open=True, source=src)
        elif key == "charge_threshold":
            changes[key] = check_number(value, key, low=0.0, high=1.0, source=src)
        elif key == "message_latency_s":
            changes[key] = check_number(value, key, low=0.0, source=src)
        elif key == "grid_limit_kw":
            limit = check_number(value, key, low=0.0, low_open=True, source=src)
            changes["site"] = dataclasses.replace(cfg.site, grid_limit_kw=limit)
        elif key == "solver":
            if not isinstance(value, str) or not value:
                raise ScenarioError(f"{src}: solver = {value!r}: must be {SOLVERS_HINT}")
            controller[key] = value
        elif key == "forecaster":
            if value not in FORECASTERS:
                raise ScenarioError(
                    f"{src}: forecaster = {value!r}: allowed: {', '.join(FORECASTERS)}"
                )
            controller[key] = value
        elif key == "forecast_quantile":
            controller[key] = check_quantile(value, key, src)
        elif key == "warmup_days":
            controller[key] = check_int(value, key, low=1, source=src)
        elif key == "task_log":
            if not isinstance(value, (str, Path)) or not str(value):
                raise ScenarioError(f"{src}: task_log = {value!r}: must be a CSV file's path")
            controller[key] = str(value)
        elif key in ("period_min",):
            controller[key] = check_number(value, key, low=1.0, source=src)
        elif key in CONTROLLER_KEYS:
            low_open = key.endswith("_h")
            controller[key] = check_number(value, key, low=0.0, low_open=low_open, source=src)
        else:
            raise ScenarioError(f"{src}: {key} = {value!r}: unknown parameter")
    if controller:
        changes["controller"] = dataclasses.replace(cfg.controller, **controller)
    new = dataclasses.replace(cfg, **changes)
    _check_counts(new, src)
    return new
