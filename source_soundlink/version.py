"""The connector's version, read once from the installed package's metadata (pyproject.toml's version).

Written once in pyproject.toml so the User-Agent, the image label and the changelog cannot drift apart;
a source tree used without installing it (PYTHONPATH) reports "0+unknown" rather than a stale number.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    VERSION = version("source-soundlink")
except PackageNotFoundError:  # not installed: running from a bare checkout
    VERSION = "0+unknown"
