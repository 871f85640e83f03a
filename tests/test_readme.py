"""The README's examples work as written."""

from __future__ import annotations

import re
from pathlib import Path

from tests.helpers import OUTPUT_FILES, assert_invariants

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_python_example_runs_and_writes_the_outputs(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    example = next(b for b in blocks if "FactoryModel(" in b)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(example, "README.md", "exec"), namespace)
    out = tmp_path / "results" / "demo"
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUT_FILES)
    assert_invariants(out)
    model = namespace["model"]  # the SimulationModel, run to its end
    assert model.time == 24 * 60 and not model.running
    assert len(model.datacollector.get_model_vars_dataframe()) == 24 * 60 + 1


def test_readme_run_command_is_the_one_the_cli_tests_use():
    from tests.test_cli import README_RUN

    command = " ".join(README_RUN)
    assert f".venv/bin/agentev {command} --hours 24 --out results/demo" in README.read_text()
