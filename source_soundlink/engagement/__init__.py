"""The `campaign_engagement_daily` stream, read in Python (see export.py for the path of one sync)."""

from source_soundlink.engagement.campaigns import check_connection
from source_soundlink.engagement.cursor import read_state, stream_state_from
from source_soundlink.engagement.export import EngagementExport, SyncFailed
from source_soundlink.engagement.jsonl_decoder import PRIMARY_KEY

__all__ = [
    "PRIMARY_KEY",
    "EngagementExport",
    "SyncFailed",
    "check_connection",
    "read_state",
    "stream_state_from",
]
