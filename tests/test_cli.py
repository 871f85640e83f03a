"""The `agentev run` command, run as a user would: a subprocess of the venv's console script."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from agentev.metrics import DEFINITIONS
from agentev.outputs import run_and_write
from tests.helpers import OUTPUT_FILES, assert_invariants, file_bytes, read_summary

AGENTEV = str(Path(sys.executable).parent / "agentev")
README_RUN = ["run", "--scenario", "light", "--strategy", "fcfs", "--seed", "42"]


def agentev(*args: str, module: bool = False, env: dict | None = None):
    cmd = [sys.executable, "-m", "agentev.cli"] if module else [AGENTEV]
    return subprocess.run(
        [*cmd, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def snapshot(out: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(out.iterdir())}


@pytest.fixture(scope="module")
def readme_run(tmp_path_factory):
    """The README's command on one simulated hour."""
    out = tmp_path_factory.mktemp("cli") / "light-fcfs-42"
    return agentev(*README_RUN, "--hours", "1", "--out", str(out)), out


def test_console_script_is_installed_in_the_venv():
    assert Path(AGENTEV).is_file()


def test_readme_run_command_exits_zero_and_writes_every_file(readme_run):
    proc, out = readme_run
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUT_FILES)
    summary = read_summary(out)
    assert summary["seed"] == 42
    assert summary["parameters"]["scenario"] == "light"
    assert summary["parameters"]["strategy"] == "fcfs"
    assert summary["parameters"]["duration_h"] == 1.0
    assert_invariants(out)


def test_run_prints_the_summary_table_with_the_metrics_of_summary_json(readme_run):
    proc, out = readme_run
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("agentev: scenario light, strategy fcfs, seed 42, 1 h")
    assert lines[1].split() == ["metric", "value", "unit"]
    metrics = read_summary(out)["metrics"]
    printed = {}
    for line in lines[3 : 3 + len(DEFINITIONS)]:
        name, value, unit = line.split(maxsplit=2)
        printed[name] = (float(value), unit)
    assert list(printed) == list(DEFINITIONS)
    for name, (value, unit) in printed.items():
        assert value == pytest.approx(metrics[name]["value"], abs=5e-5), name
        assert unit == metrics[name]["unit"], name
    assert lines[-1] == f"outputs written to {out}/"


def test_long_option_synonyms_and_module_entry_point_give_the_same_run(readme_run, tmp_path):
    _, out = readme_run
    proc = agentev(
        *README_RUN, "--simulation-time", "1", "--output-dir", str(tmp_path), module=True
    )
    assert proc.returncode == 0, proc.stderr
    assert file_bytes(tmp_path) == file_bytes(out)


def test_same_seed_gives_byte_identical_files_whatever_the_hash_seed(tmp_path):
    args = ["run", "--scenario", "heavy", "--seed", "5", "--hours", "3"]
    args += ["--charge-threshold", "0.6"]
    outs = []
    for hash_seed in ("1", "2"):
        out = tmp_path / f"hash{hash_seed}"
        proc = agentev(*args, "--out", str(out), env={"PYTHONHASHSEED": hash_seed})
        assert proc.returncode == 0, proc.stderr
        outs.append(file_bytes(out))
    assert outs[0] == outs[1]
    assert b"charging" in outs[0]["timeseries.csv"]  # the run is not trivial
    # ... and the same as the Python API in this process
    run_and_write(tmp_path / "api", hours=3, scenario="heavy", rng=5, charge_threshold=0.6)
    assert file_bytes(tmp_path / "api") == outs[0]


BAD_ARGS = [
    (["--strategy", "nope"], ["--strategy", "nope"]),
    (["--hours", "-1"], ["duration_h", "-1"]),
    (["--scenario", "missing"], ["scenario", "missing"]),
    (["--num-vehicles", "0"], ["num_vehicles", "0"]),
    (["--num-chargers", "9"], ["num_chargers", "9"]),
    (["--charge-threshold", "2"], ["charge_threshold", "2"]),
    (["--seed", "-1"], ["seed", "-1"]),
]


@pytest.mark.parametrize(("args", "expected"), BAD_ARGS, ids=lambda v: " ".join(v))
def test_bad_argument_exits_nonzero_naming_it_and_leaves_outputs_untouched(
    readme_run, tmp_path, args, expected
):
    _, out = readme_run
    before = snapshot(out)
    proc = agentev("run", "--hours", "1", "--out", str(out), *args)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr
    for part in expected:
        assert part in proc.stderr, (part, proc.stderr)
    assert snapshot(out) == before

    fresh = tmp_path / "never"
    proc = agentev("run", "--hours", "1", "--out", str(fresh), *args)
    assert proc.returncode != 0
    assert not fresh.exists()
