"""Deterministic ids, names and campaign_engagement_daily v1.0 rows, pre-encoded as JSONL bytes.

Rows are built with bytes templates instead of orjson per row: a 540k-row export must be generated in
about a second so the connector under test, not the sandbox, is the bottleneck. Every value derives from
(seed, campaign, report_date, revision), never from the wall clock, so equal options give equal bytes.
"""

from __future__ import annotations

import hashlib
import math
import random
import threading
from collections import OrderedDict
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING

import orjson

if TYPE_CHECKING:
    from .campaigns import Campaign

# Top streaming markets first (heavier weights), then the rest of ISO 3166-1 alpha-2.
_TOP = "US GB DE BR MX FR CA AU SE NL ES IT JP PL IN NO DK FI IE NZ AR CL CO PH ID TR ZA KR BE AT CH PT"
_REST = (
    "AD AE AF AG AI AL AM AO AQ AS AW AX AZ BA BB BD BF BG BH BI BJ BL BM BN BO BQ BS BT BV BW BY BZ CC "
    "CD CF CG CI CK CM CN CR CU CV CW CX CY CZ DJ DM DO DZ EC EE EG EH ER ET FJ FK FM FO GA GD GE GF GG GH "
    "GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU IL IM IO IQ IR IS JE JM JO KE KG KH KI KM KN KP "
    "KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW "
    "MY MZ NA NC NE NF NG NI NP NR NU OM PA PE PF PG PK PM PN PR PS PW PY QA RE RO RS RU RW SA SB SC SD SG "
    "SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TT TV TW TZ UA UG UM UY "
    "UZ VA VC VE VG VI VN VU WF WS YE YT ZM ZW"
)
COUNTRIES: tuple[str, ...] = tuple(_TOP.split() + _REST.split())

_WORDS_A = ("Midnight", "Golden", "Neon", "Velvet", "Paper", "Electric", "Silent", "Crimson", "Lucky", "Wild")
_WORDS_B = ("Echoes", "Highway", "Summer", "Hearts", "Skyline", "Motel", "Rain", "Signals", "Tides", "Ghosts")
# Names that exercise JSON escaping and UTF-8 on the client side.
_ODD_NAMES = ('Say "Hello"', "Café Noir", "夜の海", "Back\\Slash")
_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

REVISION_WINDOW_DAYS = 7


def digest(*parts: object) -> bytes:
    return hashlib.sha256("|".join(map(str, parts)).encode()).digest()


def b62(raw: bytes, length: int) -> str:
    n = int.from_bytes(raw, "big")
    out = []
    for _ in range(length):
        n, r = divmod(n, 62)
        out.append(_B62[r])
    return "".join(out)


def det_uuid(*parts: object) -> str:
    h = bytearray(digest(*parts)[:16])
    h[6] = (h[6] & 0x0F) | 0x40  # shaped like a uuid4, but reproducible
    h[8] = (h[8] & 0x3F) | 0x80
    x = h.hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


def isrc(*parts: object) -> str:
    h = digest("isrc", *parts)
    return f"QZ{b62(h[:4], 3).upper()}{h[4] % 100:02d}{int.from_bytes(h[5:8], 'big') % 100000:05d}"


def iso_z(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def track_name(seed: int, campaign_id: str, j: int) -> str:
    h = digest(seed, "track-name", campaign_id, j)
    if j % 9 == 5:
        return _ODD_NAMES[h[0] % len(_ODD_NAMES)]
    return f"{_WORDS_A[h[0] % 10]} {_WORDS_B[h[1] % 10]}"


def _json(v: object) -> bytes:
    return orjson.dumps(v)


_ROW_TAIL = (
    b'"playlist_position":%s,"new_listeners":%d,"returning_listeners":%d,"listeners":%d,'
    b'"new_listener_streams":%d,"returning_listener_streams":%d,"streams":%d,"spl":%r}\n'
)


class RowPlan:
    """Per-campaign constants: the sorted (country, track) combos and their pre-encoded JSON fragments."""

    def __init__(self, c: Campaign) -> None:
        self.campaign = c
        r = c.rows_per_day
        n_countries = max(1, min(len(COUNTRIES), math.isqrt(r)))
        self.n_tracks = n_tracks = max(1, -(-r // n_countries))
        tracks = []
        for j in range(n_tracks):
            tid = b62(digest(c.seed, "track", c.campaign_id, j), 22)
            # Track 0 of a track campaign is the promoted track itself; some spillover ISRCs are unresolved.
            t_isrc = isrc(c.seed, c.campaign_id, j) if j == 0 or j % 4 != 3 else None
            tracks.append((tid, t_isrc, track_name(c.seed, c.campaign_id, j)))
        combos = sorted(
            ((COUNTRIES[k % n_countries], k // n_countries) for k in range(r)),
            key=lambda ct: (ct[0], tracks[ct[1]][0]),
        )
        self.mids: list[bytes] = []
        self.weights: list[float] = []
        self.track_idx: list[int] = []
        rank = {cc: i for i, cc in enumerate(COUNTRIES)}
        for cc, j in combos:
            tid, t_isrc, tname = tracks[j]
            self.mids.append(
                b'"country_code":"%s","engaged_track_isrc":%s,"engaged_spotify_track_id":"%s",'
                b'"engaged_track_name":%s,' % (cc.encode(), _json(t_isrc), tid.encode(), _json(tname))
            )
            self.weights.append(60.0 / (1 + 0.05 * rank[cc]) / (1 + 0.1 * j))
            self.track_idx.append(j)
        is_track = c.target_type == "track"
        row_type = c.target_type if c.target_known else None
        target_isrc = tracks[0][1] if row_type == "track" else None
        target_tid = tracks[0][0] if row_type == "track" else None
        playlist_id = c.extra.get("playlistId") if not is_track else None
        self.head = (
            b'{"provider":"soundlink","account_id":"%s","schema_version":"1.0","report_date":"%%s",'
            b'"report_date_timezone":"UTC","exported_at":"%%s","campaign_id":"%s","campaign_name":%s,'
            b'"campaign_target_type":%s,"campaign_target_isrc":%s,"campaign_target_spotify_track_id":%s,'
            b'"campaign_target_playlist_id":%s,"status":"%%s","engagement_context":"%s",'
            % (
                c.organization_id.encode(),
                c.campaign_id.encode(),
                _json(c.name),
                _json(row_type),
                _json(target_isrc),
                _json(target_tid),
                _json(playlist_id),
                c.context.encode(),
            )
        )

    @staticmethod
    def day_factor(d: date, running: bool, first: date, last: date) -> float:
        if running:
            return 0.4 + 0.6 * min(1.0, (d - first).days / 7)  # ramp-up during a run's first week
        return 0.6 * math.exp(-0.15 * (d - last).days)  # tail engagement fades, many zero rows

    def block(self, d: date, revision: int, is_today: bool) -> bytes:
        """All rows of one report_date, sorted, as JSONL bytes."""
        c = self.campaign
        phase = c.phase(d)
        if phase is None:
            raise ValueError(f"{c.campaign_id} has no row on {d}")
        if is_today:  # partial day: exported during the day, refreshed after close
            exported = datetime.combine(d, time(6), UTC)
        else:
            exported = datetime.combine(d + timedelta(days=1), time(3), UTC)
        if c.delivery_day is not None:  # a late start's back-filled rows were generated when it began
            exported = max(exported, datetime.combine(c.delivery_day, time(6), UTC))
        exported += timedelta(minutes=revision)
        status = b"active" if phase[0] else b"ended"
        head = self.head % (d.isoformat().encode(), iso_z(exported).encode(), status)
        if c.target_type == "playlist" and not is_today:
            week = (d - c.start).days // 7  # the playlist is reshuffled weekly
            pos = [b"%d" % ((j + week) % self.n_tracks + 1) for j in range(self.n_tracks)]
        else:
            pos = [b"null"] * self.n_tracks
        f = self.day_factor(d, *phase)
        bits = random.Random(f"{c.seed}|{c.campaign_id}|{d.isoformat()}|{revision}").getrandbits
        out = []
        tail = _ROW_TAIL
        for mid, w, j in zip(self.mids, self.weights, self.track_idx, strict=True):
            b = bits(32)
            listeners = int(w * f * (b & 0xFFF) / 2048.0)
            new = listeners * ((b >> 12) & 0xFF) // 255
            ret = listeners - new
            ns = new + new * ((b >> 20) & 7) // 4
            rs = ret + ret * ((b >> 23) & 7) // 3
            s = ns + rs
            spl = round(s / listeners, 2) if listeners else 0.0
            out.append(head + mid + tail % (pos[j], new, ret, listeners, ns, rs, s, spl))
        return b"".join(out)


class BlockCache:
    """LRU of encoded day blocks keyed by (campaign, date, revision, is_today), bounded in bytes."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._data: OrderedDict[tuple[str, date, int, bool], bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, key: tuple[str, date, int, bool]) -> bytes | None:
        with self._lock:
            v = self._data.get(key)
            if v is not None:
                self._data.move_to_end(key)
            return v

    def put(self, key: tuple[str, date, int, bool], value: bytes) -> None:
        if len(value) > self.max_bytes:
            return
        with self._lock:
            old = self._data.pop(key, None)
            if old is not None:
                self._size -= len(old)
            self._data[key] = value
            self._size += len(value)
            while self._size > self.max_bytes:
                _, ev = self._data.popitem(last=False)
                self._size -= len(ev)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._size = 0
