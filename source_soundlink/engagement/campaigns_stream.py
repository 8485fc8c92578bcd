"""The `campaigns` stream's messages, built from the listing the engagement export makes anyway.

Why not the manifest's `campaigns` stream through the CDK (as before 0.2.0): with both streams selected,
/v1/campaigns was paged twice, the CDK's requests escaped the connector's request budget, and its
Retry-After waits (up to 5 x 600 s) sent only LOG lines, past the platform's heartbeat limit. The manifest
keeps the stream's definition (schema, discover, the record filter on campaign_ids); the records here are
the listing's items as it emits them: the API's objects unchanged, filtered by campaign_ids, one STATE
`{"__ab_no_cursor_state_message": true}` (the CDK's state for a stream without a cursor) carrying the
record count. unit_tests/test_campaigns_stream.py checks that both paths emit the same records.
"""

from __future__ import annotations

import orjson

from source_soundlink import protocol
from source_soundlink.engagement.campaigns import Listing
from source_soundlink.errors import CONFIG_ERROR, SYSTEM_ERROR, SoundlinkError

STREAM = protocol.CAMPAIGNS_STREAM
NO_CURSOR_STATE = {"__ab_no_cursor_state_message": True}


def messages(listing: Listing, failure: SoundlinkError | None) -> tuple[bytes, SoundlinkError | None]:
    """The stream's messages once the listing ended, and the error that failed the stream (None: complete).

    `failure` is why the listing (or what followed it) failed, when the listing does not say itself."""
    out = []
    if listing.items:
        out.append(protocol.stream_status(STREAM, "RUNNING"))
        prefix, middle = protocol.record_envelope(STREAM)
        out.append(protocol.record_chunk(prefix, middle, [orjson.dumps(item) for item in listing.items]))
    if listing.complete:
        out.append(protocol.state(STREAM, NO_CURSOR_STATE, len(listing.items)))
        out.append(protocol.stream_status(STREAM, "COMPLETE"))
        return b"".join(out), None
    out.append(protocol.stream_status(STREAM, "INCOMPLETE"))
    cause = listing.error or failure
    if cause is None:
        cause = SoundlinkError("The campaign list could not be read.", SYSTEM_ERROR)
    if cause.code == "insufficient_scope":
        error = SoundlinkError(
            f"The campaigns stream needs the campaigns:read scope, which the API key lacks (requestId "
            f"{cause.request_id or 'not given'}): grant it, or deselect the campaigns stream.",
            CONFIG_ERROR,
            cause.request_id,
            cause.status,
            cause.code,
        )
    else:
        error = cause
    return b"".join(out), error
