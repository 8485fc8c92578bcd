#!/usr/bin/env python3
"""Print the pip requirements of one Poetry dependency group, exactly as poetry.lock pins them.

    python scripts/lock_requirements.py [poetry.lock] [--group main] > requirements.txt
    pip install --require-hashes --no-deps -r requirements.txt

Each line is `name==version ; markers` followed by every `--hash` the lock file records for that release,
so pip installs the locked set and nothing else: the Dockerfile installs the connector's dependencies this
way, from poetry.lock alone, without Poetry in the image. Standard library only (the image's Python runs it).
Packages that come from a path, a git repository or a URL cannot be pinned by hash and are refused.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path
from typing import Any

INDEX_SOURCES = {None, "legacy"}  # PyPI (no `source` table) or a named index such as pypi-simple


def requirements(lock: dict[str, Any], group: str = "main") -> list[str]:
    """The group's packages as hash-pinned requirement lines, sorted by name."""
    lines = []
    for package in lock.get("package", []):
        if group not in package.get("groups", ["main"]):
            continue
        name, version = package["name"], package["version"]
        source_type = package.get("source", {}).get("type")
        if source_type not in INDEX_SOURCES:
            raise ValueError(f"{name} comes from a {source_type} source: it cannot be installed by hash")
        markers = package.get("markers")
        if isinstance(markers, dict):  # one marker per group when the groups disagree
            markers = markers.get(group)
        hashes = sorted({entry["hash"] for entry in package.get("files", [])})
        if not hashes:
            raise ValueError(f"poetry.lock records no file hash for {name} {version}")
        line = f"{name}=={version}" + (f" ; {markers}" if markers else "")
        lines.append(" \\\n    ".join([line, *(f"--hash={h}" for h in hashes)]))
    return sorted(lines, key=str.lower)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lock_file", nargs="?", default="poetry.lock", type=Path)
    parser.add_argument("--group", default="main", help="Poetry dependency group (default: main)")
    args = parser.parse_args(argv)
    lock = tomllib.loads(args.lock_file.read_text())
    lines = requirements(lock, args.group)
    if not lines:
        print(f"{args.lock_file} has no package in group {args.group!r}", file=sys.stderr)
        return 1
    print(f"# {len(lines)} packages of group {args.group!r}, pinned by {args.lock_file.name}")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
