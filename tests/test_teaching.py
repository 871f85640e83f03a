"""docs/teaching.md works as written: its Python blocks run, in order, as a reader would."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import ipyvuetify as v
import pytest
import solara

from agentev.strategies import STRATEGIES

DOC = Path(__file__).resolve().parent.parent / "docs" / "teaching.md"
FILE_MARK = re.compile(r"# file: (\S+)\n")


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


@pytest.fixture
def reader(tmp_path, monkeypatch):
    """A reader's working folder on sys.path; afterwards, the strategy and modules go."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    STRATEGIES.pop("mine", None)
    for name in ("mine", "my_page", "app"):
        sys.modules.pop(name, None)


def test_the_walk_through_runs_and_shows_mine_in_the_page(reader, capsys):
    blocks = python_blocks()
    files = [b for b in blocks if FILE_MARK.match(b)]
    assert [FILE_MARK.match(b).group(1) for b in files] == ["mine.py", "my_page.py"]
    for block in files:
        (reader / FILE_MARK.match(block).group(1)).write_text(block)

    namespace: dict = {}
    for block in blocks:
        if not FILE_MARK.match(block):
            exec(compile(block, str(DOC), "exec"), namespace)

    # section 3: one run per strategy, printed
    printed = capsys.readouterr().out
    assert " fcfs: energy cost" in printed and " mine: energy cost" in printed
    # section 5: the sweep compared mine with the built-in strategies, 3 runs each
    runs = namespace["runs"]
    assert sorted(runs["strategy"].unique()) == ["fcfs", "mine", "negotiation", "uncontrolled"]
    assert (runs.groupby("strategy").size() == 3).all()
    assert "mine" in STRATEGIES

    # section 4: the page built by my_page.py runs mine and says it has no plan
    spec = importlib.util.spec_from_file_location("my_page", reader / "my_page.py")
    my_page = importlib.util.module_from_spec(spec)
    sys.modules["my_page"] = my_page
    spec.loader.exec_module(my_page)
    model = solara.reactive(my_page.model)
    app = sys.modules["app"]
    _, rc = solara.render(solara.AppLayout(children=[app.make_page(model)]), handle_error=False)
    try:
        assert "mine" in rc.find(v.Select, label="Charging strategy").widget.items
        rc.find(v.Btn, children=["Step"]).widget.click()
        assert model.value.config.strategy == "mine"
        assert model.value.time == 1
        status = rc.find(v.Html, class_="agentev-status").widget.children[0]
        assert status == "t = 1 min (00:01) · tasks completed: 0"
        from components import PlanView

        assert PlanView(model.value).note.get_text() == "no plan: mine books no slots ahead"
    finally:
        rc.close()
