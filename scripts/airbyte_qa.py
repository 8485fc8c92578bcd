#!/usr/bin/env python3
"""Airbyte's own connector QA checks on this connector, offline, at the level asked of certified connectors.

    make qa                                        # = python3.11 scripts/airbyte_qa.py
    python3.11 scripts/airbyte_qa.py --report qa.json --keep

1. The checks are Airbyte's: `airbyte-internal-ops` (module `airbyte_ops_mcp`), pinned with all its
   dependencies in scripts/qa-requirements.txt and installed into their own venv, `.venv-qa` (created on
   first use, about two minutes; refreshed when the requirements change). The script re-runs itself there.
2. They run on a monorepo-shaped copy in a temporary folder, as in airbytehq/airbyte:
       airbyte-integrations/connectors/source-soundlink/   the project's files (tracked and new, not
                                                          ignored by git), without docs/
       docs/integrations/sources/soundlink.md             the project's docs/ folder
3. Offline. The checks' four network look-ups are answered as for a connector Airbyte has never published:
       Airbyte's registries (oss and cloud)  -> no entry for this connector: not released, no cloud usage
       GitHub master's metadata.yaml         -> 404: a new connector, so any version is an increment
       Docker Hub tags of this image         -> 404: never pushed, so its version cannot go backwards
       Docker Hub tag of the base image      -> the digest recorded in KNOWN_BASE_IMAGE_DIGESTS below
   Every other HTTP request fails as a connection error: the documentation-links check sends one per link
   and reports only 404s, so links are not verified offline. Other sockets to non-loopback hosts are refused.
4. As a certified connector: `supportLevel: certified` and `ab_internal.sl: 300`, so the documentation
   template checks (sl >= 300) and the certified-only metadata checks run. metadata.yaml itself says
   `community` (Airbyte sets those values, not the connector's authors).
5. `airbyte_ops_mcp.cli.local.run_qa_checks` (the code behind `airbyte-ops local connector qa`) runs every
   enabled check and writes its JSON report; this script prints a summary.

Exit status 0 when every failed check is in ACCEPTED_FAILURES: the one about the Dockerfile, which the
project keeps on purpose (docs/development.md says why). `--report PATH` writes the summary as JSON.

The top of this file imports only the standard library, so any Python 3.11 can start it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import private_venv  # stdlib only, beside this script

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv-qa"
REQUIREMENTS = ROOT / "scripts" / "qa-requirements.txt"
CONNECTOR = "source-soundlink"
CONNECTOR_DIR = Path("airbyte-integrations") / "connectors" / CONNECTOR

# Check class name -> why its failure is accepted.
ACCEPTED_FAILURES = {
    "CheckConnectorUsesPythonBaseImage": (
        "the Dockerfile stays on purpose: `docker build` and `docker run source-soundlink` work outside "
        "Airbyte's pipeline, and it builds what the pipeline builds from metadata.yaml (docs/development.md)"
    ),
}
# Docker Hub's answer for the base images metadata.yaml may pin (as Airbyte's connectors pin them).
KNOWN_BASE_IMAGE_DIGESTS = {
    "airbyte/python-connector-base:4.0.2": (
        "sha256:9fdb1888c4264cf6fee473649ecb593f56f58e5d0096a87ee0b231777e2e3e73"
    ),
}
CERTIFIED_SL = 300
# Read by PyAirbyte, which the checks' package imports: no registry calls, no telemetry.
OFFLINE_ENV = {
    "AIRBYTE_OFFLINE_MODE": "1",
    "DO_NOT_TRACK": "1",
    "AIRBYTE_DISABLE_TELEMETRY": "1",
    "NO_LIVE_PROGRESS": "1",
}
# Would send errors to Sentry, or log in to Docker Hub.
DROPPED_ENV = ("SENTRY_ENVIRONMENT", "DOCKER_HUB_USERNAME", "DOCKER_HUB_PASSWORD", "GITHUB_TOKEN")


# ------------------------------------------------------------------------------------------ the venv


def ensure_venv(venv: Path = VENV, requirements: Path = REQUIREMENTS, log: Any = print) -> Path:
    """Create or refresh the Airbyte's QA checks venv when its requirements changed; return its python."""
    return private_venv.ensure_venv(venv, requirements, "Airbyte's QA checks", log)


def in_venv(venv: Path = VENV) -> bool:
    return Path(sys.prefix).resolve() == venv.resolve()


# ------------------------------------------------------------------------------ the monorepo copy


def project_files(root: Path) -> list[Path]:
    """The project's files, relative to root: tracked and new ones, none that git ignores."""
    try:
        listed = subprocess.run(
            ["git", "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            capture_output=True,
            check=True,
        ).stdout
        names = sorted({name for name in listed.decode().split("\0") if name})
        return [Path(name) for name in names if (root / name).is_file()]
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: everything but the usual junk
        skip = {".git", "__pycache__", ".pytest_cache", ".ruff_cache", "build", "dist", "secrets", ".tmp"}
        files = []
        for path in sorted(root.rglob("*")):
            parts = path.relative_to(root).parts
            if path.is_file() and not any(p in skip or p.startswith(".venv") for p in parts):
                files.append(path.relative_to(root))
        return files


def make_monorepo(root: Path, dest: Path) -> Path:
    """Copy the project into dest as airbytehq/airbyte lays it out; return the connector's folder."""
    connector = dest / CONNECTOR_DIR
    for relative in project_files(root):
        target = dest / relative if relative.parts[0] == "docs" else connector / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / relative, target)
    return connector


# ------------------------------------------------------------------------------------------ offline


class Offline:
    """Answers the checks' look-ups as for an unpublished connector; refuses every other connection."""

    def __init__(self, base_image_digests: dict[str, str]) -> None:
        empty_registry = {"sources": [], "destinations": []}
        hub = "https://registry.hub.docker.com/v2/repositories"
        self.answers: dict[str, tuple[int, Any, str]] = {
            "https://connectors.airbyte.com/files/registries/v0/oss_registry.json": (
                200, empty_registry, "Airbyte's OSS registry: no entry for this connector"),
            "https://connectors.airbyte.com/files/registries/v0/cloud_registry.json": (
                200, empty_registry, "Airbyte's Cloud registry: no entry for this connector"),
            "https://raw.githubusercontent.com/airbytehq/airbyte/master/airbyte-integrations/connectors/"
            f"{CONNECTOR}/metadata.yaml": (404, None, "GitHub master's metadata.yaml: absent, new connector"),
            f"{hub}/airbyte/{CONNECTOR}/tags?page_size=100": (
                404, None, "Docker Hub tags of this image: none, never pushed"),
        }  # fmt: skip
        for image, digest in base_image_digests.items():
            name, tag = image.split(":")
            what = f"Docker Hub tag of the base image {image}: {digest}"
            self.answers[f"{hub}/{name}/tags/{tag}"] = (200, {"name": tag, "digest": digest}, what)
        self.answered: list[str] = []
        self.refused: list[str] = []

    def install(self) -> None:
        """Patch requests' transport and the socket module. Call before importing the checks."""
        import requests
        from requests.adapters import HTTPAdapter

        offline = self

        def send(adapter: HTTPAdapter, request: Any, **kwargs: Any) -> requests.Response:
            url = request.url
            if url not in offline.answers:
                offline.refused.append(f"{request.method} {url}")
                raise requests.exceptions.ConnectionError(f"offline: {url} is not answered", request=request)
            status, body, what = offline.answers[url]
            offline.answered.append(f"{request.method} {url} -> {status} ({what})")
            response = requests.Response()
            response.status_code = status
            response.reason = "OK" if status == 200 else "Not Found"
            response._content = json.dumps(body).encode() if body is not None else b"Not Found"
            response.headers["Content-Type"] = "application/json" if body is not None else "text/plain"
            response.url = url
            response.request = request
            return response

        HTTPAdapter.send = send  # type: ignore[method-assign]

        def loopback(address: Any) -> bool:
            host = address[0] if isinstance(address, tuple) else address
            return not isinstance(host, str) or host in ("localhost", "::1") or host.startswith("127.")

        real_connect, real_getaddrinfo = socket.socket.connect, socket.getaddrinfo

        def connect(sock: socket.socket, address: Any) -> None:
            if sock.family != socket.AF_UNIX and not loopback(address):
                offline.refused.append(f"socket connect {address}")
                raise ConnectionRefusedError(f"offline: no connection to {address}")
            real_connect(sock, address)

        def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
            if host is not None and not loopback(host if isinstance(host, str) else host.decode()):
                offline.refused.append(f"name lookup {host}")
                raise socket.gaierror(socket.EAI_NONAME, f"offline: no name lookup of {host}")
            return real_getaddrinfo(host, *args, **kwargs)

        socket.socket.connect = connect  # type: ignore[method-assign]
        socket.getaddrinfo = getaddrinfo


# ------------------------------------------------------------------------------------------ the run


def base_image(metadata_file: Path) -> str:
    """`name:tag` of metadata.yaml's connectorBuildOptions.baseImage, without docker.io/ and the digest."""
    import yaml

    address = yaml.safe_load(metadata_file.read_text())["data"]["connectorBuildOptions"]["baseImage"]
    return address.split("@")[0].removeprefix("docker.io/")


def run_checks(monorepo: Path, offline: Offline) -> dict[str, Any]:
    """Run every enabled check in monorepo as `airbyte-ops local connector qa` does; return the summary."""
    from airbyte_ops_mcp.cli import local
    from airbyte_ops_mcp.connector_ops.utils import Connector
    from airbyte_ops_mcp.connector_qa.checks import ENABLED_CHECKS

    # The level Airbyte asks of certified connectors.
    Connector.support_level = property(lambda self: "certified")  # type: ignore[method-assign,assignment]
    Connector.ab_internal_sl = property(lambda self: CERTIFIED_SL)  # type: ignore[method-assign,assignment]

    names = {check.name: type(check).__name__ for check in ENABLED_CHECKS}
    report_file = monorepo / "qa_report.json"
    previous = Path.cwd()
    os.chdir(monorepo)  # the checks find the connector and its docs relative to the working directory
    try:
        local.run_qa_checks(name=[CONNECTOR], report_path=str(report_file))
    except SystemExit:  # raised when a check failed; the report says which
        pass
    finally:
        os.chdir(previous)
    report = json.loads(report_file.read_text())["connectors"][CONNECTOR]

    def listed(kind: str) -> list[dict[str, str]]:
        entries = report[f"{kind}_checks"]
        return [
            {"check": names.get(e["check"], e["check"]), "name": e["check"], "message": e["message"]}
            for e in entries
        ]

    failed = listed("failed")
    return {
        "package": "airbyte-internal-ops " + _version("airbyte-internal-ops"),
        "connector": CONNECTOR,
        "level": {"supportLevel": "certified", "ab_internal.sl": CERTIFIED_SL},
        "enabled_checks": len(ENABLED_CHECKS),
        "passed": listed("passed"),
        "failed": failed,
        "skipped": listed("skipped"),
        "accepted_failures": [f for f in failed if f["check"] in ACCEPTED_FAILURES],
        "unexpected_failures": [f for f in failed if f["check"] not in ACCEPTED_FAILURES],
        "network": {"answered": offline.answered, "refused": offline.refused},
    }


def _version(distribution: str) -> str:
    from importlib.metadata import version

    return version(distribution)


def print_summary(summary: dict[str, Any]) -> None:
    counts = {kind: len(summary[kind]) for kind in ("passed", "failed", "skipped")}
    print()
    print(
        f"Airbyte QA checks ({summary['package']}) on {summary['connector']}, as a certified connector "
        f"(supportLevel certified, ab_internal.sl {CERTIFIED_SL}), offline:"
    )
    print(
        f"  {sum(counts.values())} of {summary['enabled_checks']} checks: {counts['passed']} passed, "
        f"{counts['failed']} failed, {counts['skipped']} skipped (do not apply)"
    )
    for failure in summary["accepted_failures"]:
        print(f"  accepted failure: {failure['check']}: {ACCEPTED_FAILURES[failure['check']]}")
    for failure in summary["unexpected_failures"]:
        print(f"  FAILED: {failure['check']} ({failure['name']}):\n    {failure['message']}")
    network = summary["network"]
    print(f"  network look-ups answered offline: {len(set(network['answered']))} distinct")
    for line in sorted(set(network["answered"])):
        print(f"    {line}")
    if network["refused"]:
        print(f"  refused (documentation links are not checked offline): {len(set(network['refused']))}")
        for line in sorted(set(network["refused"])):
            print(f"    {line}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", type=Path, help="write the summary as JSON to this file")
    parser.add_argument("--keep", action="store_true", help="keep the monorepo-shaped copy, print its path")
    args = parser.parse_args(argv)

    if not in_venv():
        try:
            python = ensure_venv(log=lambda message: print(message, file=sys.stderr, flush=True))
        except RuntimeError as error:
            print(error, file=sys.stderr)
            return 2
        os.execv(python, [str(python), str(Path(__file__).resolve()), *argv])

    os.environ.update(OFFLINE_ENV)
    # The Google client libraries the checks' package imports warn about Python 3.11's end of life.
    warnings.filterwarnings("ignore", category=FutureWarning)
    for name in DROPPED_ENV:
        os.environ.pop(name, None)
    image = base_image(ROOT / "metadata.yaml")
    if image not in KNOWN_BASE_IMAGE_DIGESTS:
        print(
            f"metadata.yaml pins the base image {image}, whose Docker Hub digest this offline run does not "
            f"know: add it to KNOWN_BASE_IMAGE_DIGESTS in {Path(__file__).name}.",
            file=sys.stderr,
        )
        return 2
    offline = Offline(KNOWN_BASE_IMAGE_DIGESTS)
    offline.install()

    monorepo = Path(tempfile.mkdtemp(prefix="airbyte-qa-"))
    os.environ["GIT_CEILING_DIRECTORIES"] = str(monorepo)  # git finds no repository around the copy
    try:
        make_monorepo(ROOT, monorepo)
        summary = run_checks(monorepo, offline)
    finally:
        if args.keep:
            print(f"monorepo-shaped copy kept in {monorepo}")
        else:
            shutil.rmtree(monorepo, ignore_errors=True)
    print_summary(summary)
    if args.report:
        args.report.write_text(json.dumps(summary, indent=2) + "\n")
    if summary["unexpected_failures"]:
        print(f"\n{len(summary['unexpected_failures'])} check(s) failed.")
        return 1
    print("\nOK: no failed check besides the accepted one.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
