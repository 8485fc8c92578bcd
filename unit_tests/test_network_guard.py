"""Airbyte Cloud's network guard: the CDK's rule (public https only), with messages that say why, up
front and on every request the fast path's client sends."""

from __future__ import annotations

import logging
import socket
from typing import Any

import pytest
import requests

from source_soundlink import network_guard
from source_soundlink.client import SoundlinkClient
from source_soundlink.config import ConfigError, SoundlinkConfig
from source_soundlink.errors import CONFIG_ERROR, SoundlinkError
from source_soundlink.network_guard import GuardedAdapter, NetworkRefused, refusal


class FakeDns:
    """getaddrinfo with fixed answers; counts lookups."""

    def __init__(self, **answers: list[str]) -> None:
        self.answers = {host.replace("_", "."): addresses for host, addresses in answers.items()}
        self.lookups: list[str] = []

    def __call__(self, host: str, port: int) -> list[Any]:
        self.lookups.append(host)
        if host not in self.answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port)) for ip in self.answers[host]]


def test_given_a_public_https_host_when_checked_then_it_is_allowed() -> None:
    assert refusal("https://api.getsoundlink.com/v1", FakeDns(api_getsoundlink_com=["93.184.216.34"])) is None


def test_given_plain_http_when_checked_then_the_scheme_is_named() -> None:
    reason = refusal("http://api.getsoundlink.com", FakeDns(api_getsoundlink_com=["93.184.216.34"]))
    assert reason is not None
    assert reason.startswith("base_url http://api.getsoundlink.com uses http, not https.")
    assert "base_url is for testing and private deployments" in reason


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("169.254.169.254", "link-local"),  # the cloud metadata service
        ("fe80::1", "link-local"),
        ("10.1.2.3", "private"),
        ("192.168.0.10", "private"),
        ("fd00::5", "private"),
        ("0.0.0.0", "unspecified (this machine)"),
    ],
)
def test_given_a_host_resolving_to_a_non_public_address_when_checked_then_the_kind_is_named(
    address: str, kind: str
) -> None:
    reason = refusal("https://internal.example.com", FakeDns(internal_example_com=[address]))
    assert reason is not None
    assert reason.startswith(f"base_url host internal.example.com ({address}) is a {kind} address.")


def test_given_one_private_address_among_public_ones_when_checked_then_it_is_refused() -> None:
    dns = FakeDns(mixed_example_com=["93.184.216.34", "10.0.0.7"])
    assert "10.0.0.7) is a private address" in (refusal("https://mixed.example.com", dns) or "")


def test_given_an_ip_literal_when_checked_then_the_message_shows_it_once() -> None:
    assert refusal("https://127.0.0.1:8443", socket.getaddrinfo) == (
        f"base_url host 127.0.0.1 is a loopback address. {network_guard._ADVICE}"
    )


def test_given_a_host_that_does_not_resolve_when_checked_then_it_is_refused_naming_it() -> None:
    assert "base_url host nowhere.invalid cannot be resolved" in (
        refusal("https://nowhere.invalid", FakeDns()) or ""
    )


def test_given_credentials_in_the_url_when_refused_then_the_message_never_shows_them() -> None:
    reason = refusal("http://user:hunter2@api.getsoundlink.com/v1?token=abc", FakeDns())
    assert reason is not None and "hunter2" not in reason and "token" not in reason and "user" not in reason


@pytest.mark.parametrize(("value", "cloud"), [("cloud", True), ("CLOUD", True), ("oss", False), ("", False)])
def test_given_deployment_mode_when_read_then_cloud_is_case_insensitive(value: str, cloud: bool) -> None:
    assert network_guard.is_cloud({"DEPLOYMENT_MODE": value}) is cloud


def test_given_cloud_mode_when_base_url_is_loopback_then_refuse_in_cloud_raises_a_config_error() -> None:
    with pytest.raises(ConfigError, match="uses http, not https"):
        network_guard.refuse_in_cloud("http://127.0.0.1:9", {"DEPLOYMENT_MODE": "cloud"})
    network_guard.refuse_in_cloud("http://127.0.0.1:9", {})  # outside Cloud: the sandbox keeps working


def test_given_outside_cloud_when_a_session_is_protected_then_it_is_left_as_is() -> None:
    session = network_guard.protect(requests.Session(), {})
    assert not isinstance(session.get_adapter("https://x.example"), GuardedAdapter)
    session = network_guard.protect(requests.Session(), {"DEPLOYMENT_MODE": "cloud"})
    assert isinstance(session.get_adapter("https://x.example"), GuardedAdapter)
    assert isinstance(session.get_adapter("http://x.example"), GuardedAdapter)


def test_given_a_guarded_session_when_sending_to_a_private_host_then_refused_and_the_verdict_cached() -> None:
    now = [0.0]
    dns = FakeDns(metadata_internal=["169.254.169.254"])
    session = requests.Session()
    session.mount("https://", GuardedAdapter(dns, clock=lambda: now[0]))

    for _ in range(2):
        with pytest.raises(NetworkRefused) as refused:
            session.get("https://metadata.internal/latest/meta-data/")
        assert refused.value.failure_type == CONFIG_ERROR
        assert "is a link-local address" in refused.value.message
    assert dns.lookups == ["metadata.internal"]  # one lookup per host, not per request

    now[0] += network_guard.RECHECK_S
    with pytest.raises(NetworkRefused):
        session.get("https://metadata.internal/")
    assert dns.lookups == ["metadata.internal"] * 2  # looked up again: a DNS answer may change


def test_given_cloud_mode_when_the_fast_path_client_sends_to_loopback_then_it_fails_once_as_config_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The client's own sessions are guarded, whatever checked base_url before (no retry either)."""
    monkeypatch.setenv("DEPLOYMENT_MODE", "cloud")
    config = SoundlinkConfig.from_mapping({"api_key": "sk_test_guard", "base_url": "https://127.0.0.1:1"})
    client = SoundlinkClient(config, lambda level, message: None)

    with pytest.raises(SoundlinkError) as raised:
        client.get("/v1/ping", None, "the connection check (/v1/ping)", "campaigns:read")

    assert raised.value.failure_type == CONFIG_ERROR
    assert "base_url host 127.0.0.1 is a loopback address" in raised.value.message
    assert client.budget.requests_sent == 1


@pytest.mark.parametrize(
    ("base_url", "phrase"),
    [
        ("http://127.0.0.1:9", "Refused by Airbyte Cloud: Invalid Protocol Scheme"),
        ("https://127.0.0.1:9", "belongs to a private network"),
    ],
)
def test_given_the_cdks_own_filter_refuses_a_check_request_when_check_then_failed_says_what_is_wrong(
    base_url: str, phrase: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CDK's entrypoint wraps Session.send in Cloud; its refusal must not read "Something went wrong"."""
    from airbyte_cdk import entrypoint
    from airbyte_cdk.models import Status

    from source_soundlink.source import SourceSoundlink

    monkeypatch.setattr(requests.Session, "send", requests.Session.send)  # undone after the test
    entrypoint._init_internal_request_filter()

    status = SourceSoundlink().check(
        logging.getLogger("airbyte"), {"api_key": "sk_test_x", "base_url": base_url}
    )

    assert status.status == Status.FAILED
    assert phrase in (status.message or "")
