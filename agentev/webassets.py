"""Solara's front-end assets from the npm registry, so that the interactive page renders offline.

A Solara page loads its JavaScript, CSS and fonts from ``/_solara/cdn/NAME@VERSION/PATH``.
Solara's server answers those requests from its *asset proxy cache*, a directory laid out as
``NAME@VERSION/PATH`` (the setting ``solara.server.settings.assets.proxy_cache_dir``, from the
environment variable ``SOLARA_ASSETS_PROXY_CACHE_DIR``), and fetches a file it does not have
from a CDN (jsdelivr). Plant networks cannot reach the CDN, so a page served there stays blank.

This module fills that cache ahead of time from the npm registry, with the exact package
versions the pinned Solara asks for (:data:`PACKAGES`, checked against :data:`SOLARA_VERSION`),
and points Solara at it:

* ``python -m agentev.webassets`` (run by ``make setup``) downloads each package's registry
  tarball once, checks it against the registry's ``dist.integrity`` and ``dist.shasum`` and
  against the integrity recorded here, and unpacks it whole (licence files included) into
  :func:`assets_dir`, by default ``~/.cache/agentev/solara-assets/solara-<version>``.
  ``$AGENTEV_ASSETS_DIR`` replaces ``~/.cache/agentev/solara-assets``; ``$AGENTEV_NPM_REGISTRY``
  replaces ``https://registry.npmjs.org`` (a plant's npm mirror).
* :func:`use_offline_assets` points the running Solara server at that directory. ``agentev viz``
  sets ``SOLARA_ASSETS_PROXY_CACHE_DIR`` for the server it starts; a page started with
  ``solara run viz/app.py`` calls :func:`use_offline_assets` when it is imported (Solara reads
  the setting for every asset request, so setting it at import time is early enough).

The cache directory also holds ``agentev-assets.json``: the Solara version, and for each package
its version, integrity, licence and licence files. It is written last, so a directory without
it (an interrupted download) counts as empty.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import os
import shutil
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

#: The Solara release whose front end :data:`PACKAGES` is (pyproject.toml pins ``solara==``).
SOLARA_VERSION = "1.64.1"


@dataclass(frozen=True)
class NpmPackage:
    """One npm package version that Solara's page loads from ``/_solara/cdn/``.

    Attributes:
        name: npm package name, with its scope if any (``@widgetti/solara-vuetify-app``).
        version: Exact version, as it appears in Solara's asset URLs.
        integrity: The registry's ``dist.integrity`` of the tarball (``sha512-<base64>``).
        used_for: What the page loads from it, and where Solara asks for it.
    """

    name: str
    version: str
    integrity: str
    used_for: str

    @property
    def spec(self) -> str:
        """``NAME@VERSION``: the package's directory in the cache and in Solara's asset URLs."""
        return f"{self.name}@{self.version}"


#: Every package the page loads from ``/_solara/cdn/`` with ``solara==SOLARA_VERSION`` (Vue 2
#: front end, ipywidgets 8), found in Solara's ``server/templates/solara.html.j2`` and
#: ``widgets/vue/gridlayout.vue`` and by loading the page in Chromium with no CDN access.
PACKAGES: tuple[NpmPackage, ...] = (
    NpmPackage(
        "@widgetti/solara-vuetify-app",
        "10.1.1",
        "sha512-Cdu6G7KIBeohT2jyeQUEDr61dhEozY23St+iDwfA3+ZyPZyoIza/nS4W2g8+dbs0Xhb+WQnXlaRI92TLgeY/Jw==",
        "the page's JavaScript bundle, Vuetify CSS and web fonts (solara.html.j2)",
    ),
    NpmPackage(
        "@widgetti/vue-grid-layout",
        "2.3.13-alpha.2",
        "sha512-zCPKe2r09eLUDl1NcdL66oPELDsbC07Z2xejPiQpPbE8hLITcr0DHvPEdL5UITQQilordKJwcxJXDE/QWo/KUA==",
        "the draggable grid that holds SolaraViz's panels (widgets/vue/gridlayout.vue)",
    ),
    NpmPackage(
        "requirejs",
        "2.3.6",
        "sha512-ipEzlWQe6RK3jkzikgCupiTbTvm4S0/CAU5GlgptkN5SO6F3u0UD0K18wy6ErDqiCyP4J4YYe1HuAShvsxePLg==",
        "the module loader of the widget front end (solara.html.j2)",
    ),
    NpmPackage(
        "font-awesome",
        "4.5.0",
        "sha512-XGGY8CN/NT8e5fKOC/K7CESNQ3+2oYOfZqwZcKgEMtcmTiHtFIH+XZWRoU0HtcdwhtSkpWXLfTIUlTdJ4PhX8A==",
        "icon font (solara.html.j2, settings.assets.fontawesome_path)",
    ),
)

DEFAULT_REGISTRY = "https://registry.npmjs.org"
#: Environment variable: the directory that holds one cache per Solara version.
ASSETS_DIR_ENV = "AGENTEV_ASSETS_DIR"
#: Environment variable: the npm registry to download from.
REGISTRY_ENV = "AGENTEV_NPM_REGISTRY"
#: Solara's own setting of its asset proxy cache directory.
SOLARA_CACHE_ENV = "SOLARA_ASSETS_PROXY_CACHE_DIR"
MANIFEST = "agentev-assets.json"
#: File names kept as licence files (matched case-insensitively on the name's start or end).
_LICENCE_PREFIXES = ("license", "licence", "copying", "notice")
_LICENCE_SUFFIXES = (".license.txt", ".licence.txt")


class WebAssetsError(RuntimeError):
    """The front-end assets cannot be fetched, do not verify, or do not fit the Solara installed."""


# ----------------------------------------------------------------------------- where
def assets_root() -> Path:
    """``$AGENTEV_ASSETS_DIR``, or ``~/.cache/agentev/solara-assets``."""
    root = os.environ.get(ASSETS_DIR_ENV)
    return Path(root) if root else Path.home() / ".cache" / "agentev" / "solara-assets"


def assets_dir(root: Path | None = None) -> Path:
    """The asset cache of :data:`SOLARA_VERSION`: Solara's proxy cache directory.

    Args:
        root: Directory holding one cache per Solara version; default :func:`assets_root`.
    """
    return (root if root is not None else assets_root()) / f"solara-{SOLARA_VERSION}"


def registry_url() -> str:
    """``$AGENTEV_NPM_REGISTRY``, or the public npm registry, without a trailing slash."""
    return (os.environ.get(REGISTRY_ENV) or DEFAULT_REGISTRY).rstrip("/")


# ----------------------------------------------------------------------------- checks
def installed_solara_version() -> str:
    """The version of the installed ``solara`` distribution."""
    try:
        return metadata.version("solara")
    except metadata.PackageNotFoundError:
        import solara

        return solara.__version__


def check_solara_version(installed: str | None = None) -> None:
    """Check that :data:`PACKAGES` belongs to the Solara that is installed.

    Args:
        installed: Solara version to check; default the installed one.

    Raises:
        WebAssetsError: if the versions differ: the page would ask for other asset versions.
    """
    installed = installed if installed is not None else installed_solara_version()
    if installed != SOLARA_VERSION:
        raise WebAssetsError(
            f"solara {installed} is installed, but agentev.webassets.PACKAGES lists the "
            f"front-end assets of solara {SOLARA_VERSION}. Reinstall the pinned version "
            f"(make setup, or pip install -e '.[dev]'), or, when upgrading solara on purpose, "
            f"update SOLARA_VERSION and PACKAGES in agentev/webassets.py to the versions "
            f"solara {installed} requests (its server/templates/solara.html.j2 and "
            f"widgets/vue/gridlayout.vue) and run python -m agentev.webassets."
        )


def read_manifest(directory: Path) -> dict | None:
    """The cache's ``agentev-assets.json``, or None if it is missing or unreadable."""
    try:
        return json.loads((directory / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def missing_packages(directory: Path | None = None) -> list[NpmPackage]:
    """The packages of :data:`PACKAGES` that ``directory`` does not hold, verified.

    Args:
        directory: An asset cache; default :func:`assets_dir`.
    """
    directory = directory if directory is not None else assets_dir()
    manifest = read_manifest(directory) or {}
    if manifest.get("solara_version") != SOLARA_VERSION:
        return list(PACKAGES)
    recorded = {entry.get("spec"): entry for entry in manifest.get("packages", [])}
    return [
        pkg
        for pkg in PACKAGES
        if (recorded.get(pkg.spec) or {}).get("integrity") != pkg.integrity
        or not (directory / pkg.spec / "package.json").is_file()
    ]


# ----------------------------------------------------------------------------- fetching
def _get(url: str, *, timeout_s: float = 60.0, attempts: int = 3) -> bytes:
    """The body of ``url``, retried on network errors and 5xx answers."""
    last: Exception | None = None
    for attempt in range(attempts):
        if attempt:
            time.sleep(2.0**attempt)
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as response:
                return response.read()
        except urllib.error.HTTPError as exc:
            last = exc
            if exc.code < 500:
                break
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            last = exc
    raise WebAssetsError(f"cannot download {url}: {last}")


def sri_sha512(data: bytes) -> str:
    """Subresource-integrity string of ``data``, as npm's ``dist.integrity`` (``sha512-...``)."""
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode("ascii")


def verify_tarball(pkg: NpmPackage, data: bytes, dist: dict) -> None:
    """Check a downloaded tarball against the registry's ``dist`` and the recorded integrity.

    Args:
        pkg: The package the tarball should be.
        data: The tarball's bytes.
        dist: The ``dist`` object of the registry's metadata of ``pkg``.

    Raises:
        WebAssetsError: naming the package and the check that failed.
    """
    if dist.get("integrity") != pkg.integrity:
        raise WebAssetsError(
            f"{pkg.spec}: the registry gives integrity {dist.get('integrity')!r}, "
            f"agentev.webassets records {pkg.integrity!r}: not the package Solara "
            f"{SOLARA_VERSION} was checked with (a wrong registry or mirror?)"
        )
    actual = sri_sha512(data)
    if actual != pkg.integrity:
        raise WebAssetsError(
            f"{pkg.spec}: the downloaded tarball has integrity {actual}, expected "
            f"{pkg.integrity} (a corrupted download or a tampered mirror)"
        )
    shasum = dist.get("shasum")
    if shasum and hashlib.sha1(data).hexdigest() != shasum:
        raise WebAssetsError(f"{pkg.spec}: the downloaded tarball does not match shasum {shasum}")


def is_licence_file(path: str) -> bool:
    """Whether a file in a package is a licence text (``LICENSE``, ``x.min.js.LICENSE.txt``...)."""
    name = path.rsplit("/", 1)[-1].lower()
    return name.startswith(_LICENCE_PREFIXES) or name.endswith(_LICENCE_SUFFIXES)


def unpack_tarball(data: bytes, target: Path) -> list[str]:
    """Unpack an npm tarball into ``target``, without its top folder (``package/``).

    Args:
        data: The ``.tgz`` bytes.
        target: A new directory to create.

    Returns:
        The package's files, relative to ``target``, sorted.

    Raises:
        WebAssetsError: if an entry would land outside ``target``, or is a link or device.
    """
    files = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        members = []
        for member in tar.getmembers():
            parts = Path(member.name).parts
            if len(parts) < 2:  # the top folder itself
                continue
            if not (member.isfile() or member.isdir()):
                raise WebAssetsError(f"{member.name}: only files and folders are unpacked")
            member.name = str(Path(*parts[1:]))
            members.append(member)
            if member.isfile():
                files.append(member.name)
        target.mkdir(parents=True)
        # The "data" filter refuses absolute paths, "..", links out of the tree and devices.
        try:
            tar.extractall(target, members=members, filter="data")
        except tarfile.FilterError as exc:
            raise WebAssetsError(f"refusing to unpack: {exc}") from exc
    return sorted(files)


def fetch_package(
    pkg: NpmPackage, directory: Path, *, registry: str | None = None
) -> dict[str, object]:
    """Download, verify and unpack one package into ``directory/NAME@VERSION``.

    Args:
        pkg: The package.
        directory: The asset cache.
        registry: npm registry URL; default :func:`registry_url`.

    Returns:
        The package's manifest entry (spec, integrity, licence, licence files, tarball URL).

    Raises:
        WebAssetsError: if the download or a check fails.
    """
    registry = (registry or registry_url()).rstrip("/")
    meta_url = f"{registry}/{urllib.parse.quote(pkg.name, safe='@')}/{pkg.version}"
    try:
        meta = json.loads(_get(meta_url))
        dist = meta["dist"]
        tarball_url = dist["tarball"]
    except (ValueError, KeyError, TypeError) as exc:
        raise WebAssetsError(f"{meta_url}: not npm package metadata ({exc})") from exc
    data = _get(tarball_url)
    verify_tarball(pkg, data, dist)

    final = directory / pkg.spec
    final.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=final.parent, prefix=".unpack-") as tmp:
        staged = Path(tmp) / "package"
        files = unpack_tarball(data, staged)
        if final.exists():
            shutil.rmtree(final)
        staged.rename(final)
    licence_files = [f for f in files if is_licence_file(f)]
    if not licence_files:
        # Some packages ship no licence text: their licence is package.json's "license"
        # field, and their README states it; both are kept with the rest of the package.
        licence_files = [f for f in files if f.lower().startswith("readme")] + ["package.json"]
    return {
        "spec": pkg.spec,
        "name": pkg.name,
        "version": pkg.version,
        "integrity": pkg.integrity,
        "license": meta.get("license"),
        "licence_files": licence_files,
        "tarball": tarball_url,
        "used_for": pkg.used_for,
    }


def _write_manifest(directory: Path, entries: list[dict]) -> None:
    manifest = {
        "solara_version": SOLARA_VERSION,
        "note": "written by agentev.webassets; Solara serves this folder as /_solara/cdn/",
        "packages": entries,
    }
    tmp = directory / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(tmp, directory / MANIFEST)


def fetch_assets(
    directory: Path | None = None,
    *,
    registry: str | None = None,
    force: bool = False,
    log: Callable[[str], None] = print,
) -> Path:
    """Make ``directory`` hold every package of :data:`PACKAGES`, verified.

    Packages already there (per ``agentev-assets.json``) are not downloaded again unless
    ``force``.

    Args:
        directory: The asset cache; default :func:`assets_dir`.
        registry: npm registry URL; default :func:`registry_url`.
        force: Download every package again.
        log: Where progress lines go.

    Returns:
        The asset cache directory.

    Raises:
        WebAssetsError: if the installed Solara is not :data:`SOLARA_VERSION`, or a download
            or a check fails.
    """
    check_solara_version()
    directory = directory if directory is not None else assets_dir()
    missing = list(PACKAGES) if force else missing_packages(directory)
    if not missing:
        log(f"agentev.webassets: Solara {SOLARA_VERSION}'s front-end assets are in {directory}")
        return directory
    directory.mkdir(parents=True, exist_ok=True)
    old = {e.get("spec"): e for e in (read_manifest(directory) or {}).get("packages", [])}
    entries = []
    for pkg in PACKAGES:
        if pkg in missing:
            log(f"agentev.webassets: fetching {pkg.spec} from {registry or registry_url()}")
            entries.append(fetch_package(pkg, directory, registry=registry))
        else:
            entries.append(old[pkg.spec])
    _write_manifest(directory, entries)
    log(f"agentev.webassets: Solara {SOLARA_VERSION}'s front-end assets are in {directory}")
    return directory


# ----------------------------------------------------------------------------- using
def use_offline_assets() -> Path | None:
    """Point this process's Solara server at the local asset cache.

    Call it at the top of the page's module (``viz/app.py``): ``solara run`` imports the page
    before it serves any request, and Solara looks the cache directory up on every asset
    request. It also sets ``SOLARA_ASSETS_PROXY_CACHE_DIR`` for child processes. It does not
    download anything: when the cache is incomplete it warns and leaves Solara's default (the
    CDN) in place.

    Returns:
        The asset cache directory in use, or None if the cache is incomplete or Solara's
        asset proxy is off.

    Raises:
        WebAssetsError: if the installed Solara is not :data:`SOLARA_VERSION`.
    """
    check_solara_version()
    directory = assets_dir()
    missing = missing_packages(directory)
    if missing:
        warnings.warn(
            f"agentev: Solara's front-end assets ({', '.join(p.spec for p in missing)}) are "
            f"not in {directory}, so the page will load them from a CDN and stays blank "
            f"without internet access. Run `make setup` (or `python -m agentev.webassets`).",
            stacklevel=2,
        )
        return None
    import solara.server.settings as server_settings
    import solara.settings

    if not solara.settings.assets.proxy:
        warnings.warn(
            "agentev: Solara's asset proxy is off (SOLARA_ASSETS_PROXY=false, or Solara "
            "detected VS Code, Colab or Voila), so the page loads its assets from a CDN; set "
            "SOLARA_ASSETS_PROXY=true before starting the server to serve them locally.",
            stacklevel=2,
        )
        return None
    os.environ[SOLARA_CACHE_ENV] = str(directory)
    server_settings.assets.proxy_cache_dir = directory
    return directory


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m agentev.webassets``: fill the asset cache (run by ``make setup``)."""
    parser = argparse.ArgumentParser(
        prog="python -m agentev.webassets",
        description="Download Solara's front-end assets from the npm registry into a local "
        "cache, so that the interactive page renders without CDN access.",
    )
    parser.add_argument(
        "--dir",
        type=Path,
        default=None,
        help=f"asset cache directory (default: {assets_dir()})",
    )
    parser.add_argument("--force", action="store_true", help="download every package again")
    parser.add_argument(
        "--check",
        action="store_true",
        help="download nothing; exit 1 if the cache is incomplete",
    )
    args = parser.parse_args(argv)
    try:
        if args.check:
            check_solara_version()
            missing = missing_packages(args.dir)
            for pkg in missing:
                print(f"agentev.webassets: missing {pkg.spec}", file=sys.stderr)
            return 1 if missing else 0
        fetch_assets(args.dir, force=args.force)
    except WebAssetsError as exc:
        print(f"agentev.webassets: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
