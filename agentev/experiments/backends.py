"""Where a campaign's runs execute: a local process pool, or a Dask distributed cluster.

Both are a :class:`concurrent.futures.Executor`, so the campaign has one code path: workers
run a :class:`~agentev.experiments.checkpoint.RunSpec` and return its result; the main
process writes every file, so no shared file system is needed. A Dask worker runs its own
installed agentev: on connecting, every worker's version is compared with ours and a
mismatch is refused (a run's key includes the version, and results must not depend on
where a run ran).
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from concurrent.futures import Executor, ProcessPoolExecutor
from typing import Any

import agentev


class VersionMismatchError(RuntimeError):
    """A Dask worker runs another agentev version than the client."""


def _worker_version() -> str:
    import agentev as worker_agentev

    return worker_agentev.__version__


def _exit_with_parent(parent_pid: int) -> None:
    """Pool initializer: a worker ends when its parent process is gone (killed)."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="agentev-parent-watch").start()


def default_workers() -> int:
    """Local worker processes: one per available core."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class Backend:
    """An executor for a campaign's runs, and how to close it.

    Args:
        workers: Local worker processes (default: one per core); ignored with a scheduler.
        scheduler: A Dask scheduler address (``tcp://HOST:8786``) or a
            ``distributed.Client``; None for the local process pool.
    """

    def __init__(self, workers: int | None = None, scheduler: Any = None) -> None:
        self.client = None
        self._own_client = False
        if scheduler is None:
            n = workers or default_workers()
            if n < 1:
                raise ValueError(f"workers = {workers!r}: must be at least 1")
            # spawn: workers start clean (no state of the parent, no inherited threads)
            ctx = multiprocessing.get_context("spawn")
            self.executor: Executor = ProcessPoolExecutor(
                max_workers=n,
                mp_context=ctx,
                initializer=_exit_with_parent,
                initargs=(os.getpid(),),
            )
            self.where = f"local process pool ({n} workers)"
        else:
            self.client = self._connect(scheduler)
            self.executor = self.client.get_executor(pure=False)
            self.where = f"Dask cluster at {self.client.scheduler.address}"

    def _connect(self, scheduler: Any):
        try:
            from distributed import Client
        except ImportError as exc:  # pragma: no cover - distributed is a dependency
            raise RuntimeError(
                "scheduler: running on a Dask cluster needs the 'distributed' package "
                "(pip install distributed)"
            ) from exc
        if isinstance(scheduler, Client):
            client = scheduler
        elif isinstance(scheduler, str):
            if not scheduler.startswith(("tcp://", "tls://", "inproc://", "ws://", "wss://")):
                raise ValueError(
                    f"scheduler = {scheduler!r}: expected a Dask scheduler address such as "
                    "tcp://HOST:8786"
                )
            client = Client(scheduler, timeout="30s")
            self._own_client = True
        else:
            raise ValueError(
                f"scheduler = {scheduler!r}: expected an address (tcp://HOST:8786) or a "
                "distributed.Client"
            )
        versions = client.run(_worker_version)
        wrong = {w: v for w, v in versions.items() if v != agentev.__version__}
        if wrong:
            if self._own_client:
                client.close()
            raise VersionMismatchError(
                f"Dask workers run another agentev version: {wrong}; this client runs "
                f"{agentev.__version__}. Install the same version on every worker."
            )
        if not versions:
            raise RuntimeError(f"scheduler = {scheduler!r}: the Dask cluster has no workers")
        return client

    def close(self) -> None:
        """Shut the executor (and a client we opened) down."""
        if self.client is None:
            self.executor.shutdown(wait=True, cancel_futures=True)
        else:
            self.executor.shutdown(wait=True)
        if self._own_client and self.client is not None:
            self.client.close()

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
