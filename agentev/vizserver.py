"""``agentev viz``: serve the interactive page (``viz/app.py``) with Solara, offline.

The command starts ``solara run viz/app.py`` as a child process with Solara's asset proxy
pointed at agentev's asset cache (:mod:`agentev.webassets`; fetched from the npm registry if it
is missing), waits until the server answers, prints ``agentev viz: serving URL``, opens the
address in a browser unless ``--no-open``, and runs until the server stops or is interrupted.
Solara's own telemetry is off by default (a plant network is not to be called home from); set
``SOLARA_TELEMETRY_MIXPANEL_ENABLE=true`` to turn it on.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import webbrowser
from pathlib import Path
from typing import Any

from agentev import webassets

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
#: The page, in the checkout next to the ``agentev`` package (an editable install).
DEFAULT_APP = Path(__file__).resolve().parents[1] / "viz" / "app.py"
#: How long the server may take to import the page and start listening.
STARTUP_TIMEOUT_S = 180.0


def add_parser(subparsers: Any) -> None:
    """Add the ``viz`` subcommand to an ``argparse`` subparsers object.

    Args:
        subparsers: The result of ``ArgumentParser.add_subparsers()``.
    """
    p = subparsers.add_parser(
        "viz",
        help="serve the interactive page (grid, chart, Step/Play/Reset) in the browser",
        description="Serve viz/app.py with Solara, with its front-end assets from the local "
        "cache (no CDN access needed), and print its address.",
    )
    p.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help=f"address to listen on (default: {DEFAULT_HOST}; 0.0.0.0 for every interface)",
    )
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default: {DEFAULT_PORT})")
    p.add_argument("--no-open", action="store_true", help="do not open a browser")
    p.add_argument(
        "--app", type=Path, default=DEFAULT_APP, help="the page's module (default: viz/app.py)"
    )


def page_url(host: str, port: int) -> str:
    """The page's address; IPv6 hosts in brackets."""
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def _probe_host(host: str) -> str:
    """An address to reach a server listening on ``host`` from this machine."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)


def wait_until_ready(
    url: str, process: subprocess.Popen, timeout_s: float = STARTUP_TIMEOUT_S
) -> bool:
    """Poll Solara's ``/readyz`` until it answers, the process exits, or the time is up.

    Solara imports the page before it starts listening, so an answer means the page is ready.

    Returns:
        True if the server answered.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url + "readyz", timeout=2.0) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    return False


def server_command(app: Path, host: str, port: int) -> list[str]:
    """``solara run APP`` with this interpreter, never opening a browser itself."""
    return [
        sys.executable,
        "-m",
        "solara",
        "run",
        str(app),
        "--host",
        host,
        "--port",
        str(port),
        "--no-open",
    ]


def server_env(assets: Path) -> dict[str, str]:
    """The server's environment: Solara's asset proxy on and pointed at ``assets``."""
    env = dict(os.environ)
    env["SOLARA_ASSETS_PROXY"] = "true"
    env[webassets.SOLARA_CACHE_ENV] = str(assets)
    env.setdefault("SOLARA_TELEMETRY_MIXPANEL_ENABLE", "false")
    return env


def _stop(process: subprocess.Popen, timeout_s: float = 10.0) -> int:
    """Stop the server (SIGTERM, then SIGKILL) and return its exit code."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.wait()


def run_command(args: argparse.Namespace) -> int:
    """Run ``agentev viz``: serve the page until the server stops or is interrupted.

    Returns:
        0 after an interrupt (Ctrl-C, SIGTERM); otherwise the server's exit code, or 1 if the
        assets or the page cannot be found or the server does not start.
    """
    app = Path(args.app)
    if not app.is_file():
        print(
            f"agentev viz: error: the page {app} does not exist (agentev viz serves viz/app.py "
            "of a source checkout installed with pip install -e; or pass --app PATH)",
            file=sys.stderr,
        )
        return 1
    try:
        assets = webassets.assets_dir()
        if webassets.missing_packages(assets):
            webassets.fetch_assets(assets, log=lambda line: print(line, flush=True))
        else:
            webassets.check_solara_version()
    except webassets.WebAssetsError as exc:
        print(f"agentev viz: error: {exc}", file=sys.stderr)
        return 1

    url = page_url(args.host, args.port)
    probe = page_url(_probe_host(args.host), args.port)
    process = subprocess.Popen(server_command(app, args.host, args.port), env=server_env(assets))

    def _terminate(signum, frame):  # SIGTERM: stop the server as Ctrl-C does
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        if not wait_until_ready(probe, process):
            code = _stop(process)
            print(
                f"agentev viz: error: the Solara server for {app} did not start "
                f"(exit code {code}; is port {args.port} free?)",
                file=sys.stderr,
            )
            return code or 1
        print(f"agentev viz: serving {url}", flush=True)
        if not args.no_open:
            webbrowser.open(probe)
        return process.wait()
    except KeyboardInterrupt:
        _stop(process)
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
