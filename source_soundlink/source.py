"""SourceSoundlink: the manifest's declarative core plus the Python engagement stream, for the CDK.

The CDK runs spec and discover from manifest.yaml (which defines the `campaigns` stream and both schemas),
launched by run.py through the CDK's own entrypoint. Both streams are read by engagement.EngagementExport,
the `campaigns` records from the listing it makes anyway (one pass over /v1/campaigns, inside the request
budget); this class adds the engagement stream to the catalog and adapts the export's byte messages to
AirbyteMessage objects for in-process callers (the CDK's test harness, the standard tests), so both read
paths emit the same messages. The `source-soundlink read` command does not come through here:
read_command.py writes the bytes to stdout. `configure` (the CDK's hook for a config before any command
uses it) applies this connector's config rules and Airbyte Cloud's network guard, so every command
refuses the same configs with the same messages.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson
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
from requests.exceptions import InvalidSchema, InvalidURL

from source_soundlink import network_guard
from source_soundlink.config import ConfigError, SoundlinkConfig, unknown_field_warnings
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

    def configure(self, config: Mapping[str, Any], temp_dir: str) -> Mapping[str, Any]:
        """The CDK's hook between reading the config file and check/discover/read: our rules first.

        Unknown fields are warned about (never an error); a config our rules refuse, or a base_url Airbyte
        Cloud refuses, is a config_error that names the field and the fix, before the spec's JSON schema
        (whose messages do not: "91 is greater than the maximum of 90") and before any request.
        A source built without a config (the CDK's test harness) takes this one: the CDK builds its
        streams from the constructor's config, not from the one passed to discover() or read().
        """
        for warning in unknown_field_warnings(config):
            self.logger.warning(warning)
        try:
            network_guard.refuse_in_cloud(SoundlinkConfig.from_mapping(dict(config)).base_url)
        except ConfigError as error:
            raise AirbyteTracedException(
                str(error), str(error), failure_type=FailureType.config_error
            ) from None
        if not self._config:
            self._config = self._migrate_and_transform_config(None, config) or {}
            self._config_for_validation = self._config
        return super().configure(config, temp_dir)

    def discover(self, logger: logging.Logger, config: Mapping[str, Any]) -> AirbyteCatalog:
        catalog = super().discover(logger, config)
        return AirbyteCatalog(streams=[self.engagement_stream(), *catalog.streams])

    def check(self, logger: logging.Logger, config: Mapping[str, Any]) -> AirbyteConnectionStatus:
        """Scope-aware check (ping, campaigns, one tiny export) instead of the manifest's CheckStream.

        CheckStream would only read `campaigns`: it cannot tell a key without metrics:read, accept a key
        without campaigns:read when campaign_ids and start_date are set, or name a missing campaign.
        """
        try:
            soundlink_config = SoundlinkConfig.from_mapping(dict(config))
            network_guard.refuse_in_cloud(soundlink_config.base_url)
            check_connection(soundlink_config, _log_to(logger))
        except (ConfigError, SoundlinkError) as error:
            return AirbyteConnectionStatus(status=Status.FAILED, message=str(error))
        except (InvalidSchema, InvalidURL) as error:  # the CDK's own Cloud filter: say what it refused
            return AirbyteConnectionStatus(status=Status.FAILED, message=f"Refused by Airbyte Cloud: {error}")
        except AirbyteTracedException as error:  # the same filter's private-network refusal
            return AirbyteConnectionStatus(status=Status.FAILED, message=error.message)
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
