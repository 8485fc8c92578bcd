"""Console entrypoint `source-soundlink`: `read` takes the fast path, every other verb the CDK's own launch.

spec, check and discover run through `airbyte_cdk.entrypoint.launch` unchanged (its stdout writing, its
Cloud network guard, secret filter, exception hook and debug switch), with the source built once from
the config file, as Airbyte's Python connectors do. What this module adds is the edge the CDK leaves to
its connectors: a config file that cannot be read, or a config our rules or the Cloud guard refuse
(SourceSoundlink.configure), ends as a FAILED connection status (check) or one TRACE error (discover)
instead of a Python traceback. airbyte-cdk is imported only on this path: `read` does not pay for it.
"""

from __future__ import annotations

import sys
from typing import Any

CHECK = "check"


def run() -> None:
    args = sys.argv[1:]
    if args[:1] == ["read"]:
        from source_soundlink.read_command import main

        sys.exit(main(args[1:], exception_hooks=True))
    sys.exit(launch_cdk(args))


def launch_cdk(args: list[str]) -> int:
    """spec/check/discover through the CDK's launch; an input error is one clean message, exit code as
    the CDK's (a failed check is an answer, exit 0; a failed discover exits 1)."""
    from airbyte_cdk.entrypoint import AirbyteEntrypoint, launch, logger
    from airbyte_cdk.exception_handler import init_uncaught_exception_handler
    from airbyte_cdk.models import FailureType
    from airbyte_cdk.utils.traced_exception import AirbyteTracedException

    from source_soundlink.config import ConfigError, SoundlinkConfig
    from source_soundlink.inputs import load_json
    from source_soundlink.source import SourceSoundlink

    init_uncaught_exception_handler(logger)  # already for building the source, not only once launched
    parsed = AirbyteEntrypoint.parse_args(args)  # argparse: a usage error exits 2, as the CDK's does
    command = parsed.command
    if not command:  # the CDK would raise "No command passed" through its exception hook
        print("usage: source-soundlink {spec,check,discover,read} [--config ...]", file=sys.stderr)
        return 2
    config_path = getattr(parsed, "config", None)
    raw_config: Any = None
    try:
        raw_config = load_json(config_path, "config") if config_path else None
        if raw_config is not None and not isinstance(raw_config, dict):
            raise ConfigError(f"The config file {config_path} does not hold a JSON object.")
        try:
            source = SourceSoundlink(config=raw_config)
        except Exception:
            SoundlinkConfig.from_mapping(raw_config or {})  # a config our rules refuse: say which field
            raise
        launch(source, args)
    except (ConfigError, AirbyteTracedException) as error:
        failure = getattr(error, "failure_type", FailureType.config_error)
        if failure != FailureType.config_error:
            raise  # the CDK's exception hook reports it, as for any connector
        message = getattr(error, "message", None) or str(error)
        return _report_input_error(command, message, raw_config)
    return 0


def _report_input_error(command: str, message: str, raw_config: Any) -> int:
    from source_soundlink import protocol
    from source_soundlink.errors import CONFIG_ERROR
    from source_soundlink.inputs import mask, secrets

    if command == CHECK:
        line = protocol.connection_status("FAILED", message)
    else:
        line = protocol.error_trace(message, CONFIG_ERROR)
    sys.stdout.buffer.write(mask(line, *secrets(raw_config)))
    sys.stdout.buffer.flush()
    return 0 if command == CHECK else 1


if __name__ == "__main__":
    run()
