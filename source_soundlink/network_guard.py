"""Airbyte Cloud's network guard, applied on every command and to every request the fast path sends.

In Cloud (`DEPLOYMENT_MODE=cloud`) the CDK's entrypoint wraps `requests.Session.send` so that a connector
reaches only public `https` endpoints: `base_url` is editable by any workspace user, and without the
guard it is a server-side request forgery hole. The CDK's piece is not enough here: `read` never builds
the CDK's entrypoint (read_command.py, for speed), and where the CDK's wrapper does run (`check`) its
refusal of a scheme is an `InvalidSchema` that surfaces as "Something went wrong". So this module applies
the same rule itself: once up front, before any request, with a message that says what is wrong
(`refusal`); and per request for the fast path's sessions (`protect`), with a short per-host cache so the
check costs one address lookup per host and minute, not one per request.

Outside Cloud nothing changes: the sandbox and the tests run on loopback over plain http.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

from source_soundlink.config import ConfigError
from source_soundlink.errors import CONFIG_ERROR, SoundlinkError

CLOUD_DEPLOYMENT_MODE = "cloud"  # as the CDK reads DEPLOYMENT_MODE, case-insensitive
RECHECK_S = 60.0  # a host's verdict is looked up again after this long (its DNS answer may change)
_ADVICE = (
    "In Airbyte Cloud a connector may only reach public https endpoints; base_url is for testing and "
    "private deployments. Leave base_url empty to use https://api.getsoundlink.com."
)
Resolver = Callable[[str, int], list[Any]]


class NetworkRefused(SoundlinkError):
    """A request the Cloud guard refused: a config error (the base_url), never retried."""


def is_cloud(environ: Mapping[str, str] = os.environ) -> bool:
    return environ.get("DEPLOYMENT_MODE", "").casefold() == CLOUD_DEPLOYMENT_MODE


def refusal(url: str, resolve: Resolver = socket.getaddrinfo) -> str | None:
    """Why Airbyte Cloud refuses `url`, or None if it may be requested: the CDK's rule (https only, no
    host with a private address), with loopback, link-local and unspecified addresses named as such."""
    parts = urlsplit(url)
    if parts.scheme != "https":
        return f"base_url {_origin(url)} uses {parts.scheme or 'no scheme'}, not https. {_ADVICE}"
    if not parts.hostname:
        return f"base_url has no host name. {_ADVICE}"
    try:
        port = parts.port or 443
        addresses = {entry[4][0] for entry in resolve(parts.hostname, port)}
    except (OSError, ValueError) as error:
        return f"base_url host {parts.hostname} cannot be resolved ({error}). {_ADVICE}"
    for address in sorted(addresses):
        kind = _non_public_kind(address)
        if kind:
            shown = parts.hostname if parts.hostname == address else f"{parts.hostname} ({address})"
            return f"base_url host {shown} is a {kind} address. {_ADVICE}"
    return None


def protect(session: requests.Session, environ: Mapping[str, str] = os.environ) -> requests.Session:
    """In Cloud, check every request `session` sends (redirects included) against the guard."""
    if is_cloud(environ):
        adapter = GuardedAdapter()
        session.mount("https://", adapter)
        session.mount("http://", adapter)  # ignore-https-check: refuses plain http in Cloud
    return session


class GuardedAdapter(HTTPAdapter):
    """An HTTPAdapter that refuses, before connecting, a URL the Cloud guard refuses."""

    def __init__(
        self, resolve: Resolver = socket.getaddrinfo, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self._resolve = resolve
        self._clock = clock
        self._verdicts: dict[tuple[str, str, int | None], tuple[float, str | None]] = {}
        self._lock = threading.Lock()

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        reason = self._verdict(request.url or "")
        if reason:
            raise NetworkRefused(f"Refused before sending: {reason}", CONFIG_ERROR)
        return super().send(request, *args, **kwargs)

    def _verdict(self, url: str) -> str | None:
        parts = urlsplit(url)
        try:
            key = (parts.scheme, parts.hostname or "", parts.port)
        except ValueError:  # a port that is not a number
            return refusal(url, self._resolve)
        now = self._clock()
        with self._lock:
            cached = self._verdicts.get(key)
        if cached and now - cached[0] < RECHECK_S:
            return cached[1]
        reason = refusal(url, self._resolve)
        with self._lock:
            self._verdicts[key] = (now, reason)
        return reason


def _non_public_kind(address: str) -> str | None:
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 scope id is not part of the address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_unspecified:
        return "unspecified (this machine)"
    if ip.is_private:
        return "private"
    return None


def _origin(url: str) -> str:
    """scheme://host[:port] of a URL: what the message needs, never a user, password, path or query."""
    parts = urlsplit(url)
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"{parts.scheme}://{parts.hostname or ''}{port}"


def refuse_in_cloud(base_url: str, environ: Mapping[str, str] = os.environ) -> None:
    """Before any request of a command: in Cloud, raise ConfigError if the guard refuses base_url."""
    if is_cloud(environ):
        reason = refusal(base_url)
        if reason:
            raise ConfigError(reason)
