"""Airbyte's own connector QA checks pass at the certified level, offline (`make qa`).

Runs scripts/airbyte_qa.py as `make qa` does: it creates .venv-qa from the pinned
scripts/qa-requirements.txt on first use (about two minutes), copies the project into a monorepo-shaped
folder and runs every check of airbyte-internal-ops with the documentation checks of support level 300
switched on, answering the checks' network look-ups as for a connector Airbyte has never published.
The only failed check allowed is the Dockerfile one, which the project keeps on purpose (docs/development.md).
The test does not skip: if the checks cannot be installed, it fails and says why.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "airbyte_qa.py"
TIMEOUT_S = 900  # a first run installs .venv-qa


@pytest.fixture(scope="module")
def summary(tmp_path_factory: pytest.TempPathFactory) -> dict:
    report = tmp_path_factory.mktemp("qa") / "summary.json"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--report", str(report)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    output = (done.stdout + done.stderr)[-8000:]
    assert report.exists(), f"scripts/airbyte_qa.py wrote no report (exit {done.returncode}):\n{output}"
    summary = json.loads(report.read_text())
    summary["_output"], summary["_returncode"] = output, done.returncode
    return summary


def test_no_failed_check_but_the_dockerfile_one(summary: dict) -> None:
    failed = [entry["check"] for entry in summary["failed"]]
    assert failed == ["CheckConnectorUsesPythonBaseImage"], summary["_output"]
    assert summary["unexpected_failures"] == []
    assert summary["_returncode"] == 0, summary["_output"]


def test_the_certified_level_checks_ran(summary: dict) -> None:
    """The documentation template checks (support level 300) and the certified-only check were not skipped."""
    assert summary["package"] == "airbyte-internal-ops 0.132.0"
    passed = {entry["check"] for entry in summary["passed"]}
    assert {
        "CheckDocumentationHeadersOrder",
        "CheckPrerequisitesSectionDescribesRequiredFieldsFromSpec",
        "CheckSourceSectionContent",
        "CheckForAirbyteCloudSectionContent",
        "CheckForAirbyteOpenSectionContent",
        "CheckSupportedSyncModesSectionContent",
        "CheckIpAllowListSectionContent",
        "CheckChangelogSectionContent",
        "CheckChangelogEntry",
        "CheckConnectorMaxSecondsBetweenMessagesValue",
        "CheckConnectorUsesPoetry",
        "CheckConnectorLicenseMatchInPyproject",
        "CheckConnectorVersionMatchInPyproject",
        "CheckConnectorUsesHTTPSOnly",
        "ValidateMetadata",
        "CheckVersionIncrement",
    } <= passed, summary["_output"]
    # Every enabled check ran; the one skipped applies to manifest-only connectors.
    ran = len(summary["passed"]) + len(summary["failed"]) + len(summary["skipped"])
    assert ran == summary["enabled_checks"]
    skipped = [entry["check"] for entry in summary["skipped"]]
    assert skipped == ["CheckManifestOnlyConnectorBaseImage"], summary["skipped"]


def test_offline_answers_were_those_of_an_unpublished_connector(summary: dict) -> None:
    answered = "\n".join(summary["network"]["answered"])
    assert "oss_registry.json -> 200" in answered  # no entry for this connector: never released
    assert "source-soundlink/metadata.yaml -> 404" in answered  # not on GitHub master
    assert "airbyte/source-soundlink/tags?page_size=100 -> 404" in answered  # never pushed
    assert "python-connector-base/tags/4.0.2 -> 200" in answered  # the pinned base image exists
    # Nothing else left this machine: the only refused requests are the documentation's own links.
    for refused in summary["network"]["refused"]:
        assert refused.startswith("GET https://"), refused
