"""Configuration dataclasses: one validated scenario, with units in every name.

`agentev.scenario` reads TOML files into these dataclasses and checks every field; the model
only ever sees a :class:`ScenarioConfig`. Defaults follow the seed document (5 kWh batteries,
3.3 kW chargers, 92 % charging efficiency, state of charge between 0.2 and 1.0, objective
weights 0.4 / 0.4 / 0.2).
"""

from __future__ import annotations

from dataclasses import dataclass, field

MIN_SOC = 0.2
MAX_SOC = 1.0
CHARGING_EFFICIENCY = 0.92
BATTERY_CAPACITY_KWH = 5.0
MAX_CHARGING_POWER_KW = 3.3
ALPHA_ENERGY = 0.4
ALPHA_DOWNTIME = 0.4
ALPHA_UTILIZATION = 0.2

CHEMISTRIES = ("li-ion", "lead-acid")
ARRIVAL_PROCESSES = ("shift", "flexible", "continuous")


@dataclass(frozen=True)
class VehicleType:
    """A kind of vehicle (AGV, tugger, forklift) and its battery.

    Attributes:
        name: Type name, e.g. ``"agv"``.
        capacity_kwh: Usable battery capacity (kWh).
        chemistry: ``"li-ion"`` (may opportunity-charge) or ``"lead-acid"`` (charges only from
            below its threshold, and then to full).
        speed_mps: Travel speed (m/s).
        max_charge_power_kw: Maximum charging power drawn from the grid (kW).
        charging_efficiency: Fraction of grid energy that reaches the battery.
        min_soc: Lowest state of charge allowed in operation (fraction).
        max_soc: Highest state of charge a charge may reach (fraction).
        cccv_knee_soc: State of charge where constant-power charging ends and the taper
            begins (fraction).
        cccv_floor_fraction: Charging power at full, as a fraction of the maximum.
        drive_empty_kw: Consumption while driving empty (kW).
        drive_loaded_kw: Consumption while driving loaded (kW).
        handling_kw: Consumption while loading or unloading (kW).
        idle_kw: Consumption while standing, queueing or charging (kW).
        handling_min: Duration of one loading or unloading operation (minutes).
    """

    name: str = "agv"
    capacity_kwh: float = BATTERY_CAPACITY_KWH
    chemistry: str = "li-ion"
    speed_mps: float = 1.0
    max_charge_power_kw: float = MAX_CHARGING_POWER_KW
    charging_efficiency: float = CHARGING_EFFICIENCY
    min_soc: float = MIN_SOC
    max_soc: float = MAX_SOC
    cccv_knee_soc: float = 0.8
    cccv_floor_fraction: float = 0.1
    drive_empty_kw: float = 0.75
    drive_loaded_kw: float = 1.1
    handling_kw: float = 1.5
    idle_kw: float = 0.08
    handling_min: float = 0.5


@dataclass(frozen=True)
class FleetGroup:
    """A number of vehicles of one type."""

    vehicle_type: str
    count: int


@dataclass(frozen=True)
class StationSpec:
    """A workstation's loading point (its dock) on the layout map."""

    id: str
    col: int
    row: int


@dataclass(frozen=True)
class ChargerSpec:
    """A charger site on the layout map.

    Attributes:
        id: Charger id.
        col: Map column of the charger's dock.
        row: Map row of the charger's dock.
        ports: Number of ports; each serves one vehicle at a time.
        power_kw: Maximum power per port (kW), drawn from the grid.
        queue_slots: Waiting places at the charger.
        mtbf_h: Mean time between failures (hours); 0 means the charger never fails.
        mttr_h: Mean time to repair (hours).
    """

    id: str
    col: int
    row: int
    ports: int = 1
    power_kw: float = MAX_CHARGING_POWER_KW
    queue_slots: int = 2
    mtbf_h: float = 0.0
    mttr_h: float = 1.0


@dataclass(frozen=True)
class LayoutConfig:
    """The factory floor.

    Attributes:
        cell_size_m: Edge length of one grid cell (m).
        rows: The map, one string per row; ``#`` blocked, ``.`` aisle, ``P`` parking place.
        stations: Workstation docks.
        chargers: Charger sites, in order; ``num_chargers`` takes the first ones.
    """

    cell_size_m: float
    rows: tuple[str, ...]
    stations: tuple[StationSpec, ...]
    chargers: tuple[ChargerSpec, ...]


@dataclass(frozen=True)
class Shift:
    """A period of the day with a constant task arrival rate (tasks per hour)."""

    start_h: float
    end_h: float
    rate_per_h: float


@dataclass(frozen=True)
class TaskConfig:
    """Task arrival process.

    Attributes:
        process: ``"shift"`` (time-varying Poisson by shift, repeated daily), ``"flexible"``
            (each hour's rate is the shift rate times a log-normal factor drawn per run) or
            ``"continuous"`` (as ``shift``, meant for 24/7 patterns over several days).
        shifts: Daily rate pattern; hours not covered have rate 0.
        due_window_min: Time from release to due (minutes).
        flexible_sigma: Log-normal sigma of the hourly factor for ``"flexible"``.
    """

    process: str
    shifts: tuple[Shift, ...]
    due_window_min: float = 30.0
    flexible_sigma: float = 0.5


@dataclass(frozen=True)
class SiteConfig:
    """Site electrical connection.

    Attributes:
        base_load_kw: Non-fleet site load for each hour of the day (24 values, kW).
        grid_limit_kw: Grid connection limit (kW) for base load plus charging; None = none.
    """

    base_load_kw: tuple[float, ...]
    grid_limit_kw: float | None = None


@dataclass(frozen=True)
class DemandCharge:
    """A demand charge on the highest 15-minute average site power within daily hours.

    Attributes:
        name: Name as on the rate sheet.
        rate_per_kw_month: Charge per kW of that peak per billing month (currency/kW-month).
        start_h: First hour of the day the charge looks at (0 = all day).
        end_h: End hour (exclusive, 24 = end of day).
    """

    name: str
    rate_per_kw_month: float
    start_h: float = 0.0
    end_h: float = 24.0


@dataclass(frozen=True)
class TariffConfig:
    """Time-of-use tariff with a demand charge.

    Attributes:
        name: Tariff name with utility and effective date.
        source: Where the figures come from.
        currency: Currency code.
        energy_price_per_kwh: Price for each hour of the day (24 values, currency/kWh).
        demand_charges: Demand charges, each pro-rated from its monthly rate to the simulated
            days.
    """

    name: str
    source: str
    currency: str
    energy_price_per_kwh: tuple[float, ...]
    demand_charges: tuple[DemandCharge, ...]


@dataclass(frozen=True)
class ControllerConfig:
    """Twin controller and optimisation settings (used by the intelligent strategies)."""

    prediction_horizon_h: float = 4.0
    optimization_interval_h: float = 1.0
    period_min: float = 15.0
    #: Length of the horizon's periods after the first re-plan interval (minutes; move
    #: blocking, see ``agentev.optimization.controller``).
    tail_period_min: float = 60.0
    alpha_energy: float = ALPHA_ENERGY
    alpha_downtime: float = ALPHA_DOWNTIME
    alpha_utilization: float = ALPHA_UTILIZATION
    solver: str = "highs"
    forecaster: str = "rate"
    #: Robust planning: plan for this upper quantile of the learned forecasters' task demand
    #: (e.g. 0.9) rather than its mean; None: the mean.
    forecast_quantile: float | None = None
    #: Days of simulated history before the run that the learned forecasters train on.
    warmup_days: int = 7
    #: A CSV task log (format: docs/forecasting.md) the learned forecasters train on instead
    #: of simulated days; None: simulate ``warmup_days``.
    task_log: str | None = None


@dataclass(frozen=True)
class ScenarioConfig:
    """Everything a run needs, validated.

    Attributes:
        name: Scenario name.
        source: File the scenario came from.
        duration_h: Simulated time (hours).
        strategy: Charging strategy name.
        charge_threshold: State of charge below which a vehicle asks for a charge.
        initial_soc_range: Initial state of charge is drawn uniformly from this range.
        vehicle_types: Vehicle types by name.
        fleet: Vehicle groups, in order.
        num_chargers: Number of charger sites used (the first ones of the layout).
        layout: Factory floor.
        tasks: Task arrival process.
        site: Site connection.
        tariff: Energy tariff.
        controller: Controller settings.
        message_latency_s: Latency of a negotiation message (seconds).
    """

    name: str
    source: str
    duration_h: float
    strategy: str
    charge_threshold: float
    initial_soc_range: tuple[float, float]
    vehicle_types: dict[str, VehicleType]
    fleet: tuple[FleetGroup, ...]
    num_chargers: int
    layout: LayoutConfig
    tasks: TaskConfig
    site: SiteConfig
    tariff: TariffConfig
    controller: ControllerConfig = field(default_factory=ControllerConfig)
    message_latency_s: float = 1.0

    @property
    def num_vehicles(self) -> int:
        """Total number of vehicles in the fleet."""
        return sum(group.count for group in self.fleet)

    def vehicle_type_sequence(self) -> list[VehicleType]:
        """The type of each vehicle, in vehicle-id order."""
        return [
            self.vehicle_types[group.vehicle_type]
            for group in self.fleet
            for _ in range(group.count)
        ]
