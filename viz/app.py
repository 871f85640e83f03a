"""Interactive page for the factory twin: ``solara run viz/app.py``.

The page is Mesa's :class:`~mesa.visualization.SolaraViz`. The sidebar holds Mesa's controls
(play interval, render interval: the steps Play and Step advance per redraw; Reset, play /
pause, Step) and the model parameters: scenario, strategy, vehicles, chargers, the three
objective weights and the seed. Reset rebuilds the model from them. One step is one
simulated minute.

Page 0, the live twin (``viz/components.py``): the status line and the factory floor (walls,
workstations with their waiting jobs, chargers with their ports, vehicles by activity and
state of charge, with a legend); live charts of the run so far (fleet state of charge, site
power against the energy price, tasks completed and backlog, charger queue); the controller's
plan as a Gantt chart with the present time marked; the last step's negotiation messages.

Page 1, the campaign (``viz/campaign_page.py``): the statistics and figures of an
``agentev experiments`` output directory.

Page 2, the live twin (``viz/twin_page.py``): the divergence of a twin (``agentev twin
--out DIR``) from its plant: SoC error, state mismatches, rejected messages, and its
estimates against the plant's states of charge.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import solara
from mesa.discrete_space import PropertyLayer
from mesa.visualization import Slider, SolaraViz

from agentev.model import FactoryModel
from agentev.scenario import DEFAULT_SCENARIO, available_scenarios, load_scenario
from agentev.strategies import STRATEGIES
from agentev.webassets import use_offline_assets

# Solara's JavaScript, CSS and fonts from the local cache (make setup), not from a CDN.
use_offline_assets()

# viz/ is a folder of scripts, not a package: `solara run viz/app.py` puts it on sys.path,
# and so does this line when the file is loaded another way (the tests, the benchmark).
VIZ_DIR = str(Path(__file__).resolve().parent)
if VIZ_DIR not in sys.path:
    sys.path.insert(0, VIZ_DIR)

from campaign_page import CampaignPage  # noqa: E402
from components import (  # noqa: E402, F401  (the page's building blocks, re-exported)
    LIVE_COMPONENTS,
    FloorView,
    agent_portrayal,
    clock,
    make_renderer,
    status_line,
)
from twin_page import TwinPage  # noqa: E402

DEFAULT_SEED = 42
#: Step of the objective weight sliders.
WEIGHT_STEP = 0.05


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
        alpha_energy: Objective weight of energy cost; None keeps the scenario's.
        alpha_downtime: Objective weight of vehicle downtime; None keeps the scenario's.
        alpha_utilization: Objective weight of charger utilisation; None keeps the scenario's.
        duration_h: Simulated time (hours); None keeps the scenario's (the ``hindsight``
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
        alpha_energy: float | None = None,
        alpha_downtime: float | None = None,
        alpha_utilization: float | None = None,
        duration_h: float | None = None,
        rng: Any = DEFAULT_SEED,
    ) -> None:
        super().__init__(
            scenario_name,
            strategy=strategy,
            num_vehicles=num_vehicles,
            num_chargers=num_chargers,
            alpha_energy=alpha_energy,
            alpha_downtime=alpha_downtime,
            alpha_utilization=alpha_utilization,
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


# ----------------------------------------------------------------- parameters and page
def _limits() -> tuple[int, int]:
    """Largest fleet and charger count every built-in scenario's map can take."""
    layouts = [load_scenario(name).layout for name in available_scenarios()]
    max_vehicles = min(sum(row.count("P") for row in lay.rows) for lay in layouts)
    max_chargers = min(len(lay.chargers) for lay in layouts)
    return max_vehicles, max_chargers


def _weight(label: str, value: float) -> Slider:
    return Slider(label, float(value), 0.0, 1.0, WEIGHT_STEP, dtype=float)


def make_model_params(initial: FactoryModel) -> dict:
    """SolaraViz controls, starting from the initial model's values.

    The sliders hold explicit values: after choosing another scenario, its own fleet size and
    weights apply only where the sliders are moved to them.
    """
    max_vehicles, max_chargers = _limits()
    cfg = initial.config
    c = cfg.controller
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
        # the objective weights of the twin controller (intelligent, hindsight): energy cost,
        # vehicle downtime, charger utilisation (see agentev/objective.py)
        "alpha_energy": _weight("alpha_energy", c.alpha_energy),
        "alpha_downtime": _weight("alpha_downtime", c.alpha_downtime),
        "alpha_utilization": _weight("alpha_utilization", c.alpha_utilization),
        "rng": {"type": "InputText", "value": str(initial.seed), "label": "Seed"},
    }


def make_components(live=LIVE_COMPONENTS) -> list[tuple[Any, int]]:
    """The page's components: the model on page 0, the campaign on 1, the live twin on 2."""
    return [*((component, 0) for component in live), (CampaignPage, 1), (TwinPage, 2)]


def make_page(
    model: FactoryViewModel | solara.Reactive[FactoryViewModel],
    components: list[tuple[Any, int]] | None = None,
    render_interval: int = 1,
):
    """The SolaraViz page for a model (or a reactive model, so tests can follow Reset).

    Args:
        model: The model shown first.
        components: ``(component, page)`` pairs; None: :func:`make_components`.
        render_interval: Steps per redraw (Step and Play) at the start; the sidebar's
            "Render Interval" slider changes it.
    """
    initial = model.value if isinstance(model, solara.Reactive) else model
    return SolaraViz(
        model,
        components=make_components() if components is None else components,
        model_params=make_model_params(initial),
        play_interval=150,
        render_interval=render_interval,
        name="agentev: factory EV fleet",
    )


model = FactoryViewModel(DEFAULT_SCENARIO, rng=DEFAULT_SEED)
page = make_page(model)
