"""Checkpoints of a campaign: one file per finished run, written atomically.

A run is keyed by a hash of what determines its result: scenario (its name, and the
content of its file), strategy, seed, the parameter overrides, simulated hours and the
package version (:func:`run_key`). Its checkpoint ``checkpoints/<key>.json`` holds the run's
specification, its result and a SHA-256 checksum of both; it is written to a temporary file
and renamed, so a crash (even ``kill -9``) leaves either the whole file or none. A file that
does not parse, whose checksum or key does not match, is reported with a warning, removed,
and its run is done again. Leftover temporary files are removed.

The checkpoint summary ``checkpoint.json`` records the campaign's progress (runs done and
total, start time, rate); ``agentev monitor`` reads it from another terminal.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import agentev
from agentev.scenario import load_scenario

CHECKPOINT_DIR = "checkpoints"
SUMMARY_FILE = "checkpoint.json"
FORMAT = 1


class CheckpointWarning(UserWarning):
    """A checkpoint file was corrupt or truncated; its run is done again."""


@dataclass(frozen=True)
class RunSpec:
    """One run of a campaign.

    Attributes:
        scenario: Built-in scenario name or path of a scenario file.
        strategy: Charging strategy name.
        replication: Replication number (0-based); every strategy's replication ``k`` uses
            the same seed (common random numbers).
        seed: The model's ``rng`` seed.
        hours: Simulated hours (None: the scenario's duration).
        params: Other :class:`~agentev.model.FactoryModel` keyword overrides.
    """

    scenario: str
    strategy: str
    replication: int
    seed: int
    hours: float | None = None
    params: dict[str, Any] = field(default_factory=dict)

    def model_kwargs(self) -> dict[str, Any]:
        """The :class:`~agentev.model.FactoryModel` keywords of this run."""
        return {
            "scenario": self.scenario,
            "strategy": self.strategy,
            "rng": self.seed,
            "duration_h": self.hours,
            **self.params,
        }

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunSpec:
        """Inverse of :meth:`to_dict`."""
        return cls(**data)


def _scenario_fingerprint(scenario: str) -> str:
    """The scenario's name, plus a hash of its file's content (an edited file is a new run)."""
    cfg = load_scenario(scenario)
    path = Path(scenario)
    if path.suffix == ".toml" and path.is_file():
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        return f"{cfg.name}:{digest}"
    return cfg.name


def run_key(spec: RunSpec) -> str:
    """The run's checkpoint key: 16 hex digits of a SHA-256 over its determinants.

    Scenario (and its file's content), strategy, seed, simulated hours, parameter overrides
    and the agentev version; not the replication number, which only names the seed.
    """
    ident = {
        "scenario": _scenario_fingerprint(spec.scenario),
        "strategy": spec.strategy,
        "seed": spec.seed,
        "hours": spec.hours,
        "params": dict(sorted(spec.params.items())),
        "version": agentev.__version__,
    }
    text = json.dumps(ident, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _checksum(payload: Mapping[str, Any]) -> str:
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file, synced, then renamed."""
    tmp = path.with_name(f"{path.name}.tmp")
    with tmp.open("w", encoding="utf-8", newline="") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class CheckpointStore:
    """The checkpoint files of one output directory."""

    def __init__(self, output_dir: str | Path) -> None:
        self.root = Path(output_dir)
        self.dir = self.root / CHECKPOINT_DIR

    def path(self, key: str) -> Path:
        """The checkpoint file of a run key."""
        return self.dir / f"{key}.json"

    def save(self, key: str, spec: RunSpec, result: Mapping[str, Any]) -> Path:
        """Store a finished run (atomically)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        payload = {"format": FORMAT, "key": key, "spec": spec.to_dict(), "result": result}
        record = {**payload, "sha256": _checksum(payload)}
        path = self.path(key)
        write_atomic(path, json.dumps(record, sort_keys=True, allow_nan=True) + "\n")
        return path

    def _read(self, path: Path) -> dict[str, Any] | None:
        """A valid record, or None (with a warning) for a corrupt or truncated file."""
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            payload = {k: record[k] for k in ("format", "key", "spec", "result")}
            ok = (
                record["sha256"] == _checksum(payload)
                and record["key"] == path.stem
                and record["format"] == FORMAT
            )
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
            reason = f"unreadable ({type(exc).__name__}: {exc})"
        else:
            if ok:
                return record
            reason = "checksum, key or format mismatch"
        warnings.warn(
            f"checkpoint {path} is corrupt or truncated: {reason}; its run is done again",
            CheckpointWarning,
            stacklevel=3,
        )
        path.unlink(missing_ok=True)
        return None

    def get(self, key: str) -> dict[str, Any] | None:
        """One run's valid record, or None (a corrupt file is reported and removed)."""
        path = self.path(key)
        return self._read(path) if path.is_file() else None

    def load(self) -> dict[str, dict[str, Any]]:
        """Every valid checkpoint by key; corrupt ones and leftover temporary files removed."""
        if not self.dir.is_dir():
            return {}
        for tmp in self.dir.glob("*.tmp"):
            tmp.unlink(missing_ok=True)  # a write cut short: never kept
        out = {}
        for path in sorted(self.dir.glob("*.json")):
            record = self._read(path)
            if record is not None:
                out[record["key"]] = record
        return out

    def count(self) -> int:
        """Number of checkpoint files (without validating them)."""
        return len(list(self.dir.glob("*.json"))) if self.dir.is_dir() else 0

    def write_summary(self, summary: Mapping[str, Any]) -> Path:
        """Write the checkpoint summary (progress) atomically."""
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / SUMMARY_FILE
        write_atomic(path, json.dumps(summary, indent=2, sort_keys=True) + "\n")
        return path

    def read_summary(self) -> dict[str, Any] | None:
        """The checkpoint summary, or None if there is none (yet)."""
        path = self.root / SUMMARY_FILE
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return None
