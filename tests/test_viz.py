"""The Solara page in viz/app.py, rendered without a browser (``solara.render``)."""

import importlib.util
from pathlib import Path

import ipyvuetify as v
import ipywidgets
import pytest
import solara
from mesa.visualization.solara_viz import SpaceRendererComponent

from agentev.strategies import STRATEGIES

APP_PATH = Path(__file__).resolve().parents[1] / "viz" / "app.py"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def app():
    # viz/ is a folder of scripts (served by `solara run viz/app.py`), not a package.
    spec = importlib.util.spec_from_file_location("agentev_viz_app", APP_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def render():
    """solara.render, closing each page afterwards.

    Mesa's update counter is one global reactive: a page left open would redraw on every
    Step of the next test.
    """
    contexts = []

    def render(element):
        _, rc = solara.render(element, handle_error=False)
        contexts.append(rc)
        return rc

    yield render
    for rc in contexts:
        rc.close()


def render_page(app, render):
    """Render the page in an AppLayout (SolaraViz puts its controls in the sidebar)."""
    model = solara.reactive(app.FactoryViewModel())
    rc = render(solara.AppLayout(children=[app.make_page(model)]))
    return model, rc


def status_text(rc) -> str:
    return rc.find(v.Html, class_="agentev-status").widget.children[0]


def test_step_advances_one_minute_and_updates_the_status_line(app, render):
    model, rc = render_page(app, render)
    assert model.value.time == 0
    assert status_text(rc) == "t = 0 min (00:00) · tasks completed: 0"

    rc.find(v.Btn, children=["Step"]).widget.click()

    assert model.value.time == 1
    assert model.value.steps == 1
    assert status_text(rc) == "t = 1 min (00:01) · tasks completed: 0"


def test_reset_rebuilds_the_model_from_the_controls(app, render):
    model, rc = render_page(app, render)
    first = model.value
    rc.find(v.Btn, children=["Step"]).widget.click()
    rc.find(v.Btn, children=["Step"]).widget.click()
    assert first.time == 2

    rc.find(v.Select, label="Scenario").widget.v_model = "heavy"
    rc.find(v.Select, label="Charging strategy").widget.v_model = "uncontrolled"
    rc.find(v.Slider, label="Vehicles").widget.v_model = 5
    rc.find(v.Btn, children=["Reset"]).widget.click()

    rebuilt = model.value
    assert rebuilt is not first
    assert rebuilt.time == 0
    assert rebuilt.scenario_name == "heavy"
    assert rebuilt.config.strategy == "uncontrolled"
    assert len(rebuilt.vehicles) == 5
    assert rebuilt.seed == app.DEFAULT_SEED
    assert status_text(rc) == "t = 0 min (00:00) · tasks completed: 0"


def test_seed_typed_in_the_seed_box_becomes_an_int(app):
    assert app.FactoryViewModel(rng="7").seed == 7
    assert app.FactoryViewModel(rng=7).seed == 7
    with pytest.raises(ValueError, match="whole number"):
        app.FactoryViewModel(rng="seven")


@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_floor_plan_renders_every_agent_for_each_strategy(app, render, strategy):
    # a 4 h day: the oracle solves its whole-run plan at construction
    model = app.FactoryViewModel(strategy=strategy, duration_h=4)
    for _ in range(30):
        model.step()
    renderer = app.make_renderer(model)

    rc = render(SpaceRendererComponent(model, renderer))

    image = rc.find(ipywidgets.Image).widget
    assert bytes(image.value).startswith(PNG_SIGNATURE)
    drawn = sum(len(c.get_offsets()) for c in renderer.canvas.collections)
    expected = len(model.vehicles) + len(model.chargers) + len(model.stations)
    assert drawn == expected
    assert len(renderer.canvas.images) == 2  # walls and parking places
