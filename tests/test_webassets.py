"""Solara's front-end assets: the recorded versions, the checks, the cache, ``agentev viz``.

Everything here runs offline: the registry is a local HTTP server the test starts.
"""

from __future__ import annotations

import io
import json
import os
import re
import tarfile
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import solara
import solara.server.settings as server_settings

from agentev import webassets
from agentev.cli import main
from agentev.webassets import NpmPackage, WebAssetsError

SOLARA_DIR = Path(solara.__file__).parent
#: The files of the installed Solara that name the assets of its Vue 2 page.
ASSET_SOURCES = ["server/templates/solara.html.j2", "widgets/vue/gridlayout.vue"]


def _exact_specs(text: str) -> set[str]:
    """``NAME@X.Y.Z[-pre]`` in asset URLs (``{{cdn}}/NAME@VERSION/`` or ``getCdn()}/...``)."""
    pattern = r"(?:\{\{cdn\}\}|getCdn\(\)\})/((?:@[\w.-]+/)?[\w.-]+@\d+\.\d+\.\d+[\w.-]*)/"
    return set(re.findall(pattern, text))


def test_recorded_packages_are_what_the_installed_solara_asks_for():
    assert solara.__version__ == webassets.SOLARA_VERSION
    asked = set()
    for source in ASSET_SOURCES:
        asked |= _exact_specs((SOLARA_DIR / source).read_text())
    # the Vue 3 app is only loaded with ipyvue/ipyvuetify 3, which pyproject.toml excludes
    asked = {spec for spec in asked if "solara-vuetify3-app" not in spec}
    fontawesome = server_settings.assets.fontawesome_path.strip("/").split("/")[0]
    asked.add(fontawesome)
    assert {pkg.spec for pkg in webassets.PACKAGES} == asked


def test_another_solara_version_is_refused_with_both_versions_named():
    with pytest.raises(WebAssetsError, match=r"solara 9\.9\.9 is installed.*solara 1\.64\.1"):
        webassets.check_solara_version("9.9.9")
    webassets.check_solara_version(webassets.SOLARA_VERSION)


def _tarball(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_a_tarball_that_does_not_match_the_recorded_integrity_is_refused():
    data = _tarball({"package/package.json": b"{}"})
    pkg = NpmPackage("demo", "1.0.0", webassets.sri_sha512(data), "a test")
    webassets.verify_tarball(pkg, data, {"integrity": pkg.integrity})
    with pytest.raises(WebAssetsError, match="corrupted download"):
        webassets.verify_tarball(pkg, data + b"x", {"integrity": pkg.integrity})
    with pytest.raises(WebAssetsError, match="registry gives integrity"):
        webassets.verify_tarball(pkg, data, {"integrity": "sha512-other"})
    with pytest.raises(WebAssetsError, match="shasum"):
        webassets.verify_tarball(pkg, data, {"integrity": pkg.integrity, "shasum": "0" * 40})


def test_unpacking_drops_the_top_folder_and_refuses_paths_outside(tmp_path):
    files = webassets.unpack_tarball(
        _tarball({"package/package.json": b"{}", "package/dist/a.js": b"1"}), tmp_path / "ok"
    )
    assert files == ["dist/a.js", "package.json"]
    assert (tmp_path / "ok" / "dist" / "a.js").read_bytes() == b"1"
    with pytest.raises(WebAssetsError):
        webassets.unpack_tarball(_tarball({"package/../../evil": b"x"}), tmp_path / "bad")
    assert not (tmp_path / "evil").exists()


@pytest.fixture
def registry(tmp_path, monkeypatch):
    """A local npm registry serving one package, which replaces ``PACKAGES``."""
    root = tmp_path / "registry"
    data = _tarball(
        {
            "package/package.json": b'{"name": "demo", "version": "1.0.0"}',
            "package/LICENSE": b"MIT",
            "package/dist/demo.js": b"console.log('demo')",
        }
    )
    pkg = NpmPackage("@scope/demo", "1.0.0", webassets.sri_sha512(data), "a test")
    server = ThreadingHTTPServer(
        ("127.0.0.1", 0), partial(SimpleHTTPRequestHandler, directory=str(root))
    )
    url = f"http://127.0.0.1:{server.server_address[1]}"
    (root / "@scope" / "demo").mkdir(parents=True)  # the server unquotes @scope%2Fdemo
    (root / "tarballs").mkdir()
    (root / "tarballs" / "demo-1.0.0.tgz").write_bytes(data)
    meta = {
        "name": pkg.name,
        "version": pkg.version,
        "license": "MIT",
        "dist": {"integrity": pkg.integrity, "tarball": f"{url}/tarballs/demo-1.0.0.tgz"},
    }
    (root / "@scope" / "demo" / "1.0.0").write_text(json.dumps(meta))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(webassets, "PACKAGES", (pkg,))
    monkeypatch.setenv(webassets.REGISTRY_ENV, url)
    monkeypatch.setenv(webassets.ASSETS_DIR_ENV, str(tmp_path / "assets"))
    yield pkg
    server.shutdown()
    server.server_close()


def test_fetch_fills_the_cache_once_and_records_licences(registry, tmp_path):
    lines: list[str] = []
    directory = webassets.fetch_assets(log=lines.append)
    assert directory == tmp_path / "assets" / f"solara-{webassets.SOLARA_VERSION}"
    assert (directory / "@scope" / "demo@1.0.0" / "dist" / "demo.js").is_file()
    manifest = webassets.read_manifest(directory)
    assert manifest["solara_version"] == webassets.SOLARA_VERSION
    [entry] = manifest["packages"]
    assert entry["integrity"] == registry.integrity
    assert entry["licence_files"] == ["LICENSE"]
    assert webassets.missing_packages() == []
    assert sum("fetching" in line for line in lines) == 1

    webassets.fetch_assets(log=lines.append)  # already there: nothing downloaded
    assert sum("fetching" in line for line in lines) == 1


def test_a_cache_of_another_solara_version_counts_as_empty(registry):
    directory = webassets.fetch_assets(log=lambda line: None)
    manifest = webassets.read_manifest(directory)
    manifest["solara_version"] = "0.0.1"
    (directory / webassets.MANIFEST).write_text(json.dumps(manifest))
    assert webassets.missing_packages() == [registry]


def test_use_offline_assets_points_solara_at_the_cache(registry, monkeypatch):
    monkeypatch.setattr(server_settings.assets, "proxy_cache_dir", Path("/nonexistent"))
    monkeypatch.setenv(webassets.SOLARA_CACHE_ENV, "restored after the test")
    with pytest.warns(UserWarning, match="make setup"):
        assert webassets.use_offline_assets() is None
    assert server_settings.assets.proxy_cache_dir == Path("/nonexistent")

    directory = webassets.fetch_assets(log=lambda line: None)
    assert webassets.use_offline_assets() == directory
    assert server_settings.assets.proxy_cache_dir == directory
    assert os.environ[webassets.SOLARA_CACHE_ENV] == str(directory)


def test_viz_command_names_a_missing_page(tmp_path, capsys):
    assert main(["viz", "--no-open", "--app", str(tmp_path / "nope.py")]) == 1
    assert "nope.py does not exist" in capsys.readouterr().err
