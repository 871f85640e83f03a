"""Interactive page for the factory twin: ``solara run viz/app.py``.

The page is Mesa's :class:`~mesa.visualization.SolaraViz`: the sidebar holds Mesa's controls
(Reset, play/pause, Step) and the model parameters; the main area shows the factory floor
(a matplotlib :class:`~mesa.visualization.SpaceRenderer`) next to a status line and a chart of
the fleet's mean state of charge. One Step is one simulated minute.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import solara
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize, to_hex
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from mesa.discrete_space import PropertyLayer
from mesa.visualization import Slider, SolaraViz, SpaceRenderer
from mesa.visualization.components import AgentPortrayalStyle, PropertyLayerStyle

from agentev.agents.charger import Charger
from agentev.agents.vehicle import Vehicle, VehicleState
from agentev.agents.workstation import Workstation
from agentev.model import FactoryModel
from agentev.scenario import DEFAULT_SCENARIO, available_scenarios, load_scenario
from agentev.strategies import STRATEGIES

DEFAULT_SEED = 42

#: Vehicles are filled by state of charge, red (empty) to green (full).
SOC_CMAP = colormaps["RdYlGn"]
#: Marker of each vehicle state: triangles drive, polygons handle loads, P/X/* are charging.
STATE_MARKERS: dict[VehicleState, str] = {
    VehicleState.IDLE: "o",
    VehicleState.TO_PARK: "v",
    VehicleState.TO_PICKUP: ">",
    VehicleState.WAIT_DOCK: "h",
    VehicleState.LOADING: "^",
    VehicleState.TO_DROPOFF: "<",
    VehicleState.UNLOADING: "p",
    VehicleState.TO_CHARGER: "P",
    VehicleState.QUEUED: "X",
    VehicleState.CHARGING: "*",
}
CHARGER_COLOR = "tab:blue"
FAILED_CHARGER_COLOR = "black"
WORKSTATION_COLOR = "tab:purple"
#: Colour of each floor layer added by :class:`FactoryViewModel`.
FLOOR_COLORS = {"blocked": "dimgray", "parking": "lightsteelblue"}


def _seed(rng: Any) -> Any:
    """The seed as the model wants it; Mesa's ``InputText`` control hands back a string.

    Raises:
        ValueError: if the text is not a whole number.
    """
    if not isinstance(rng, str):
        return rng
    if not rng.strip():
        return None
    try:
        return int(rng)
    except ValueError:
        raise ValueError(f"seed = {rng!r}: type a whole number, or leave it empty") from None


class FactoryViewModel(FactoryModel):
    """:class:`FactoryModel` with the constructor and attributes that ``SolaraViz`` expects.

    * The scenario is chosen by ``scenario_name``: SolaraViz's Reset treats a ``scenario``
      keyword as Mesa's own :class:`mesa.experimental.scenarios.Scenario` and replaces the
      name chosen in the controls with an empty ``Scenario()``.
    * ``grid`` is the layout's Mesa grid (SpaceRenderer looks for ``model.grid``), with two
      display-only property layers: ``blocked`` (walls, machines) and ``parking``.

    Args:
        scenario_name: Built-in scenario name (see ``agentev.scenario.available_scenarios``).
        strategy: Charging strategy name; None keeps the scenario's.
        num_vehicles: Fleet size; None keeps the scenario's.
        num_chargers: Charger sites in use; None keeps the scenario's.
        duration_h: Simulated time in hours; None keeps the scenario's (the ``oracle``
            strategy solves its whole-run plan at construction, so it grows with this).
        rng: Seed (int, or its text from the seed box).
    """

    def __init__(
        self,
        scenario_name: str = DEFAULT_SCENARIO,
        *,
        strategy: str | None = None,
        num_vehicles: int | None = None,
        num_chargers: int | None = None,
        duration_h: float | None = None,
        rng: Any = DEFAULT_SEED,
    ) -> None:
        super().__init__(
            scenario_name,
            strategy=strategy,
            num_vehicles=num_vehicles,
            num_chargers=num_chargers,
            duration_h=duration_h,
            rng=_seed(rng),
        )
        layout = self.layout
        parking = np.zeros_like(layout.passable)
        parking[tuple(np.array(layout.parking).T)] = True
        layout.grid.add_property_layer(PropertyLayer.from_data("blocked", ~layout.passable))
        layout.grid.add_property_layer(PropertyLayer.from_data("parking", parking))

    @property
    def grid(self):
        """The factory floor's Mesa grid."""
        return self.layout.grid


# ----------------------------------------------------------------- floor plan
def agent_portrayal(agent) -> AgentPortrayalStyle:
    """Vehicles by state (marker) and state of charge (colour); chargers and workstations."""
    x, y = agent.position
    match agent:
        case Vehicle():
            return AgentPortrayalStyle(
                x=x,
                y=y,
                color=to_hex(SOC_CMAP(agent.soc)),
                marker=STATE_MARKERS[agent.state],
                size=90,
                zorder=3,
                edgecolors="black",
                linewidths=0.8,
            )
        case Charger():
            color = FAILED_CHARGER_COLOR if agent.failed else CHARGER_COLOR
            return AgentPortrayalStyle(
                x=x, y=y, color=color, marker="s", size=260, zorder=1, edgecolors=color
            )
        case Workstation():
            return AgentPortrayalStyle(
                x=x,
                y=y,
                color=WORKSTATION_COLOR,
                marker="D",
                size=160,
                zorder=1,
                edgecolors=WORKSTATION_COLOR,
            )
    raise TypeError(f"no portrayal for {type(agent).__name__}")


def floor_portrayal(layer) -> PropertyLayerStyle:
    """Walls and parking places as flat colours."""
    return PropertyLayerStyle(
        color=FLOOR_COLORS[layer.name], alpha=1.0, vmin=0, vmax=1, colorbar=False
    )


def decorate_floor(ax) -> None:
    """Size, legend and state-of-charge colour bar; called once per renderer."""
    fig = ax.get_figure()
    fig.set_size_inches(10, 5)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    handles = [
        Line2D([], [], ls="", marker=marker, color="lightgray", mec="black", label=state.value)
        for state, marker in STATE_MARKERS.items()
    ]
    handles += [
        Line2D([], [], ls="", marker="s", color=CHARGER_COLOR, ms=9, label="charger"),
        Line2D([], [], ls="", marker="s", color=FAILED_CHARGER_COLOR, ms=9, label="failed"),
        Line2D([], [], ls="", marker="D", color=WORKSTATION_COLOR, ms=7, label="workstation"),
        Patch(color=FLOOR_COLORS["parking"], label="parking"),
        Patch(color=FLOOR_COLORS["blocked"], label="wall"),
    ]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
    fig.colorbar(
        ScalarMappable(Normalize(0.0, 1.0), SOC_CMAP),
        ax=ax,
        orientation="horizontal",
        fraction=0.06,
        pad=0.02,
        label="vehicle state of charge",
    )


def make_renderer(model: FactoryViewModel) -> SpaceRenderer:
    """The floor plan renderer (matplotlib backend).

    Drawn once here: SolaraViz redraws only the layers (structure, agents, property layers)
    that have been drawn before.
    """
    renderer = SpaceRenderer(model, backend="matplotlib")
    renderer.setup_agents(agent_portrayal).setup_propertylayer(floor_portrayal)
    renderer.post_process = decorate_floor
    return renderer.render()


# ----------------------------------------------------------------- status and chart
def clock(minutes: float) -> str:
    """Time of day of a model time in minutes, with the day after the first: ``day 2 06:05``."""
    day, minute = divmod(int(minutes), 24 * 60)
    hhmm = f"{minute // 60:02d}:{minute % 60:02d}"
    return hhmm if day == 0 else f"day {day + 1} {hhmm}"


def status_line(model: FactoryModel) -> str:
    """Model time and tasks completed, as one line."""
    t = model.time
    return f"t = {t:g} min ({clock(t)}) · tasks completed: {model.tasks_completed}"


def mean_soc_figure(model: FactoryModel) -> Figure:
    """Mean state of charge of the fleet so far (one DataCollector row per minute)."""
    soc = model.datacollector.get_model_vars_dataframe()["mean_soc"]
    fig = Figure(figsize=(5, 3), constrained_layout=True)
    ax = fig.subplots()
    ax.plot(np.arange(len(soc)) / 60.0, soc.to_numpy(), color="tab:green")
    ax.set_xlim(left=0.0)
    ax.set_ylim(0.0, 1.0)
    ax.set_xlabel("time (h)")
    ax.set_ylabel("mean state of charge")
    ax.grid(alpha=0.3)
    return fig


def fleet_status(model: FactoryModel):
    """Status line and mean-SoC chart.

    A plain function, not a ``@solara.component``: SolaraViz wraps plain functions in a
    component that redraws after every step; a component passed as is would not redraw.
    """
    with solara.Column() as column:
        solara.Text(status_line(model), classes=["agentev-status"])
        solara.FigureMatplotlib(mean_soc_figure(model), format="png")
    return column


# ----------------------------------------------------------------- parameters and page
def _limits() -> tuple[int, int]:
    """Largest fleet and charger count every built-in scenario's map can take."""
    layouts = [load_scenario(name).layout for name in available_scenarios()]
    max_vehicles = min(sum(row.count("P") for row in lay.rows) for lay in layouts)
    max_chargers = min(len(lay.chargers) for lay in layouts)
    return max_vehicles, max_chargers


def make_model_params(initial: FactoryModel) -> dict:
    """SolaraViz controls, starting from the initial model's values."""
    max_vehicles, max_chargers = _limits()
    cfg = initial.config
    return {
        "scenario_name": {
            "type": "Select",
            "value": initial.scenario_name,
            "values": available_scenarios(),
            "label": "Scenario",
        },
        "strategy": {
            "type": "Select",
            "value": cfg.strategy,
            "values": list(STRATEGIES),
            "label": "Charging strategy",
        },
        "num_vehicles": Slider("Vehicles", cfg.num_vehicles, 1, max_vehicles),
        "num_chargers": Slider("Chargers", cfg.num_chargers, 1, max_chargers),
        "rng": {"type": "InputText", "value": initial.seed, "label": "Seed"},
    }


def make_page(model: FactoryViewModel | solara.Reactive[FactoryViewModel]):
    """The SolaraViz page for a model (or a reactive model, so tests can follow Reset)."""
    initial = model.value if isinstance(model, solara.Reactive) else model
    return SolaraViz(
        model,
        make_renderer(initial),
        components=[(fleet_status, 0)],
        model_params=make_model_params(initial),
        name="agentev: factory EV fleet",
    )


model = FactoryViewModel(DEFAULT_SCENARIO, rng=DEFAULT_SEED)
page = make_page(model)
