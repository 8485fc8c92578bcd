"""Console entrypoint `source-soundlink`: `read` takes the fast path, every other verb goes to the CDK."""

from __future__ import annotations

import sys


def run() -> None:
    args = sys.argv[1:]
    if args[:1] == ["read"]:
        from source_soundlink.read_command import main

        sys.exit(main(args[1:]))

    from source_soundlink.source import launch

    launch(args)


if __name__ == "__main__":
    run()
