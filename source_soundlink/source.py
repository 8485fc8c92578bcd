"""SourceSoundlink: the manifest's declarative core plus the Python engagement stream, for the CDK.

The CDK runs spec and discover from manifest.yaml (which defines the `campaigns` stream and both schemas).
Both streams are read by engagement.EngagementExport, the `campaigns` records from the listing it makes
anyway (one pass over /v1/campaigns, inside the request budget); this class adds the engagement stream to
the catalog and adapts the export's byte messages to AirbyteMessage objects for in-process callers (the
CDK's test harness, the standard tests), so both read paths emit the same messages. The
`source-soundlink read` command does not come through here: read_command.py writes the bytes to stdout.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson
from airbyte_cdk.entrypoint import AirbyteEntrypoint
from airbyte_cdk.logger import PRINT_BUFFER
from airbyte_cdk.models import (
    AirbyteCatalog,
    AirbyteConnectionStatus,
    AirbyteMessage,
    AirbyteMessageSerializer,
    AirbyteStateMessage,
    AirbyteStateMessageSerializer,
    AirbyteStream,
    ConfiguredAirbyteCatalog,
    FailureType,
    Status,
    SyncMode,
)
from airbyte_cdk.sources.declarative.yaml_declarative_source import YamlDeclarativeSource
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_soundlink.config import ConfigError, SoundlinkConfig
from source_soundlink.engagement import (
    PRIMARY_KEY,
    EngagementExport,
    SyncFailed,
    check_connection,
    read_state,
)
from source_soundlink.errors import SoundlinkError
from source_soundlink.protocol import ENGAGEMENT_STREAM

MANIFEST = str(Path(__file__).with_name("manifest.yaml"))


class SourceSoundlink(YamlDeclarativeSource):
    def __init__(
        self,
        catalog: ConfiguredAirbyteCatalog | None = None,
        config: Mapping[str, Any] | None = None,
        state: list[AirbyteStateMessage] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(path_to_yaml=MANIFEST, catalog=catalog, config=config, state=state, **kwargs)

    def engagement_stream(self) -> AirbyteStream:
        return AirbyteStream(
            name=ENGAGEMENT_STREAM,
            json_schema=self.resolved_manifest["schemas"][ENGAGEMENT_STREAM],
            supported_sync_modes=[SyncMode.full_refresh, SyncMode.incremental],
            source_defined_cursor=True,
            default_cursor_field=["report_date"],
            source_defined_primary_key=[[field] for field in PRIMARY_KEY],
            is_resumable=True,
        )

    def discover(self, logger: logging.Logger, config: Mapping[str, Any]) -> AirbyteCatalog:
        if config and not self._config:
            # The CDK builds streams from the config given to the constructor, not to discover().
            return SourceSoundlink(config=config).discover(logger, config)
        catalog = super().discover(logger, config)
        return AirbyteCatalog(streams=[self.engagement_stream(), *catalog.streams])

    def check(self, logger: logging.Logger, config: Mapping[str, Any]) -> AirbyteConnectionStatus:
        """Scope-aware check (ping, campaigns, one tiny export) instead of the manifest's CheckStream.

        CheckStream would only read `campaigns`: it cannot tell a key without metrics:read, accept a key
        without campaigns:read when campaign_ids and start_date are set, or name a missing campaign.
        """
        try:
            check_connection(SoundlinkConfig.from_mapping(dict(config)), _log_to(logger))
        except (ConfigError, SoundlinkError) as error:
            return AirbyteConnectionStatus(status=Status.FAILED, message=str(error))
        return AirbyteConnectionStatus(status=Status.SUCCEEDED)

    def read(
        self,
        logger: logging.Logger,
        config: Mapping[str, Any],
        catalog: ConfiguredAirbyteCatalog,
        state: list[AirbyteStateMessage] | None = None,
    ) -> Iterator[AirbyteMessage]:
        streams = [s.stream.name for s in catalog.streams]
        engagement = [s for s in catalog.streams if s.stream.name == ENGAGEMENT_STREAM]
        full_refresh = bool(engagement) and engagement[0].sync_mode != SyncMode.incremental
        raw_state = [AirbyteStateMessageSerializer.dump(message) for message in state or []]
        try:
            soundlink_config = SoundlinkConfig.from_mapping(dict(config))
            # A full refresh reads the state too: a retried attempt resumes from its failed attempt's.
            stream_state = read_state(raw_state) if engagement else None
        except ConfigError as error:
            raise AirbyteTracedException(
                str(error), str(error), failure_type=FailureType.config_error
            ) from None
        export = EngagementExport(
            soundlink_config, stream_state, streams=streams, full_refresh_mode=full_refresh
        )
        try:
            for chunk in export.messages():
                for line in chunk.splitlines():
                    yield AirbyteMessageSerializer.load(orjson.loads(line))
        except SyncFailed as failure:
            raise AirbyteTracedException(
                str(failure), str(failure), failure_type=FailureType(failure.failure_type)
            ) from None


def _log_to(logger: logging.Logger) -> Any:
    levels = {"DEBUG": logging.DEBUG, "INFO": logging.INFO, "WARN": logging.WARNING, "ERROR": logging.ERROR}
    return lambda level, message: logger.log(levels.get(level, logging.INFO), message)


class SoundlinkEntrypoint(AirbyteEntrypoint):
    @staticmethod
    def validate_connection(source_spec: Any, config: Mapping[str, Any]) -> None:
        """Our config rules before the spec's JSON schema (check, discover): their messages name the field
        and the fix, where the schema's do not ("91 is greater than the maximum of 90")."""
        try:
            SoundlinkConfig.from_mapping(dict(config))
        except ConfigError as error:
            raise AirbyteTracedException(
                str(error), str(error), failure_type=FailureType.config_error
            ) from None
        AirbyteEntrypoint.validate_connection(source_spec, config)


def launch(args: list[str]) -> None:
    """airbyte_cdk.entrypoint.launch with SoundlinkEntrypoint (the CDK's launch builds its own entrypoint)."""
    config_path = AirbyteEntrypoint.extract_config(args)
    entrypoint = SoundlinkEntrypoint(
        SourceSoundlink(config=SourceSoundlink.read_config(config_path) if config_path else None)
    )
    with PRINT_BUFFER:
        for message in entrypoint.run(entrypoint.parse_args(args)):
            print(f"{message}\n", end="")
