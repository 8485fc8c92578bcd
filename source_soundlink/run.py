"""Placeholder entrypoint: the connector core is being built (issue 2)."""


def run() -> None:
    raise SystemExit("source-soundlink is not built yet")
