"""Console entrypoint `source-soundlink`: `read` takes the fast path, every other verb goes to the CDK."""

from __future__ import annotations

import sys
from typing import Any


def run() -> None:
    args = sys.argv[1:]
    if args[:1] == ["read"]:
        from source_soundlink.read_command import main

        sys.exit(main(args[1:]))

    from airbyte_cdk.entrypoint import AirbyteEntrypoint
    from airbyte_cdk.logger import PRINT_BUFFER
    from airbyte_cdk.models import FailureType
    from airbyte_cdk.utils.traced_exception import AirbyteTracedException

    from source_soundlink.config import ConfigError, SoundlinkConfig
    from source_soundlink.source import SourceSoundlink

    class Entrypoint(AirbyteEntrypoint):
        @staticmethod
        def validate_connection(source_spec: Any, config: Any) -> None:
            """Our config rules first (check, discover): their messages name the field and say how to fix
            it, where the CDK's JSON-schema ones do not ("91 is greater than the maximum of 90")."""
            try:
                SoundlinkConfig.from_mapping(dict(config))
            except ConfigError as error:
                raise AirbyteTracedException(
                    message=str(error), internal_message=str(error), failure_type=FailureType.config_error
                ) from None
            AirbyteEntrypoint.validate_connection(source_spec, config)

    config_path = AirbyteEntrypoint.extract_config(args)
    config = SourceSoundlink.read_config(config_path) if config_path else None
    # airbyte_cdk.entrypoint.launch, with the entrypoint above.
    entrypoint = Entrypoint(SourceSoundlink(config=config))
    with PRINT_BUFFER:
        for message in entrypoint.run(entrypoint.parse_args(args)):
            print(f"{message}\n", end="")


if __name__ == "__main__":
    run()
