"""Poetry packaging: poetry.lock pins the connector, and the image installs its `main` group from it alone."""

from __future__ import annotations

import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.specifiers import SpecifierSet

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import lock_requirements  # the script the Dockerfile runs

ROOT = Path(__file__).resolve().parents[1]

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
LOCK = tomllib.loads((ROOT / "poetry.lock").read_text())


def _pins(lines: list[str]) -> dict[str, str]:
    """{name: version} of the requirement lines."""
    pins = {}
    for line in lines:
        name, _, rest = line.partition("==")
        pins[name] = rest.split()[0]
    return pins


@pytest.fixture(scope="module")
def main_group() -> list[str]:
    return lock_requirements.requirements(LOCK, "main")


def test_given_a_direct_dependency_then_pyproject_gives_a_range_and_the_lock_a_version_inside_it() -> None:
    poetry = PYPROJECT["tool"]["poetry"]
    direct = {k: v for k, v in poetry["dependencies"].items() if k != "python"}
    direct |= {k: v for k, v in poetry["group"]["dev"]["dependencies"].items() if isinstance(v, str)}
    locked = {p["name"]: p["version"] for p in LOCK["package"]}
    assert {"airbyte-cdk", "requests", "orjson", "pytest", "requests-mock", "ruff"} <= set(direct)
    for name, constraint in direct.items():
        specifiers = SpecifierSet(constraint)
        # A range with a floor and a ceiling: an automated bump edits only the lock.
        assert {s.operator for s in specifiers} == {">=", "<"}, (name, constraint)
        assert locked[name] in specifiers, (name, locked[name], constraint)
    assert poetry["group"]["dev"]["dependencies"]["soundlink-sandbox"] == {"path": "sandbox", "develop": True}


def test_image_requirements_are_the_locked_main_group(main_group: list[str]) -> None:
    pins = _pins(main_group)
    assert pins["airbyte-cdk"] == "7.39.1"
    assert pins["requests"] == "2.34.2"
    assert pins["orjson"] == "3.13.0"
    for dev_only in ("pytest", "requests-mock", "ruff", "soundlink-sandbox", "iniconfig", "pluggy"):
        assert dev_only not in pins
    # Every main-group package of the lock, each with at least one hash (pip --require-hashes).
    locked = {p["name"]: p["version"] for p in LOCK["package"] if "main" in p["groups"]}
    assert pins == locked
    assert all("--hash=sha256:" in line for line in main_group)


def test_markers_follow_the_group() -> None:
    lock = {
        "package": [
            {
                "name": "colorama",
                "version": "0.4.6",
                "groups": ["main", "dev"],
                "markers": {"main": 'platform_system == "Windows"', "dev": 'sys_platform == "win32"'},
                "files": [{"file": "colorama-0.4.6-py2.py3-none-any.whl", "hash": "sha256:ab"}],
            }
        ]
    }
    [line] = lock_requirements.requirements(lock, "main")
    assert line.splitlines()[0] == 'colorama==0.4.6 ; platform_system == "Windows" \\'
    assert lock_requirements.requirements(lock, "other") == []


def test_a_path_dependency_in_the_group_is_refused() -> None:
    lock = {"package": [{"name": "x", "version": "1", "groups": ["main"], "source": {"type": "directory"}}]}
    with pytest.raises(ValueError, match="cannot be installed by hash"):
        lock_requirements.requirements(lock, "main")


def test_this_venv_holds_the_locked_versions() -> None:
    """`make` installed .venv with `poetry sync`: every locked package at its locked version."""
    for package in LOCK["package"]:
        markers = package.get("markers") or {}
        markers = markers if isinstance(markers, dict) else {"any": markers}
        if markers and not any(Marker(m).evaluate() for m in markers.values()):
            continue  # not for this platform (Windows-only, say)
        if package.get("source", {}).get("type") == "directory":
            continue  # the sandbox, installed editable
        assert metadata.version(package["name"]) == package["version"], package["name"]


def test_console_script_is_installed() -> None:
    scripts = {ep.name: ep.value for ep in metadata.entry_points(group="console_scripts")}
    assert scripts["source-soundlink"] == "source_soundlink.run:run"
    assert (Path(sys.executable).parent / "source-soundlink").exists()
