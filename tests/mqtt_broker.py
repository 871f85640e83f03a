"""A private Mosquitto broker for tests: its own process on a free port of 127.0.0.1.

The tests never use a system-wide broker (Debian's package may start one on port 1883):
:func:`start_broker` starts ``/usr/sbin/mosquitto`` with a configuration of its own. The
``mqtt_broker`` fixture (registered in ``tests/conftest.py``) yields its URL. A missing
Mosquitto fails the tests; it never skips them.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

MOSQUITTO = Path("/usr/sbin/mosquitto")
BROKER_START_S = 10.0


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on (at the time of the call)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def start_broker(tmp_path: Path) -> tuple[str, subprocess.Popen]:
    """Start Mosquitto on a free port of 127.0.0.1 and wait until it accepts connections.

    Args:
        tmp_path: A directory for its configuration file and log.

    Returns:
        The broker's URL ``mqtt://127.0.0.1:<port>`` and its process (the caller terminates
        it: :func:`stop_broker`).
    """
    if not os.access(MOSQUITTO, os.X_OK):
        pytest.fail(f"{MOSQUITTO} not found: install Debian's mosquitto: make setup", pytrace=False)
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        # a burst of states must not be dropped at a subscriber (the default queue is 1,000)
        "max_queued_messages 0\nmax_inflight_messages 100\n",
        encoding="utf-8",
    )
    log = tmp_path / "mosquitto.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(MOSQUITTO), "-c", str(conf)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C of the test run does not reach it first
        )
    deadline = time.monotonic() + BROKER_START_S
    while not _accepts_connections(port):
        if process.poll() is not None or time.monotonic() > deadline:
            stop_broker(process)
            output = log.read_text(encoding="utf-8", errors="replace")
            pytest.fail(
                f"mosquitto did not accept connections on 127.0.0.1:{port} within "
                f"{BROKER_START_S:.0f} s (exit code {process.returncode}); its output:\n{output}",
                pytrace=False,
            )
        time.sleep(0.05)
    return f"mqtt://127.0.0.1:{port}", process


def stop_broker(process: subprocess.Popen) -> None:
    """Terminate a broker started by :func:`start_broker` and wait for it."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def mqtt_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a Mosquitto broker shared by the test session, stopped at its end.

    ``AGENTEV_MQTT_BROKER=mqtt://127.0.0.1:PORT`` (set by ``.ci/run``, which starts one) uses
    that broker instead; it must accept connections.
    """
    given = os.environ.get("AGENTEV_MQTT_BROKER")
    if given:
        port = int(given.rsplit(":", 1)[1])
        if not _accepts_connections(port):
            pytest.fail(f"AGENTEV_MQTT_BROKER={given}: nothing accepts connections there")
        yield given
        return
    url, process = start_broker(tmp_path_factory.mktemp("mosquitto"))
    try:
        yield url
    finally:
        stop_broker(process)
