"""Placeholder: the sandbox server is being built (issue 3)."""


def main() -> None:
    raise SystemExit("soundlink-sandbox is not built yet")
