"""The webhook rules: the signature receivers verify, the retry schedule, and which
addresses a delivery may reach."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress

import pytest

from chatter.domain.webhooks import (
    is_public_address,
    retry_delay_s,
    signature_header,
    verify_signature,
)
from chatter.errors import WebhookUrlRefused
from chatter.events.webhook_targets import parse_url, resolve_target


def test_the_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    body = b'{"id":1}'
    header = signature_header("whsec_s", 1_700_000_000, body)
    expected = hmac.new(b"whsec_s", b'1700000000.{"id":1}', hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={expected}"
    assert verify_signature("whsec_s", header, body)
    assert not verify_signature("whsec_other", header, body)
    assert not verify_signature("whsec_s", header, body + b" ")
    # A new timestamp on a captured signature does not verify.
    assert not verify_signature("whsec_s", header.replace("t=1700000000", "t=1700000001"), body)
    assert not verify_signature("whsec_s", "garbage", body)


def test_retries_back_off_exponentially_up_to_the_cap() -> None:
    delays = [retry_delay_s(n, base_s=10, factor=2, max_s=3600) for n in range(1, 11)]
    assert delays[:4] == [10, 20, 40, 80]
    assert delays[-1] == 3600
    assert retry_delay_s(10_000, base_s=10, factor=2, max_s=60) == 60


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.216.34", True),
        ("2606:2800:220:1:248:1893:25c8:1946", True),
        ("127.0.0.1", False),
        ("10.0.0.1", False),
        ("172.16.5.4", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("255.255.255.255", False),
        ("::1", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("::ffff:10.0.0.1", False),
        ("::ffff:93.184.216.34", True),
    ],
)
def test_only_public_addresses_are_public(address: str, public: bool) -> None:
    assert is_public_address(ipaddress.ip_address(address)) is public


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example.com/", "scheme"),
        ("file:///etc/passwd", "scheme"),
        ("example.com/hook", "scheme"),
        ("http://", "host"),
    ],
)
def test_only_http_urls_with_a_host_are_accepted(url: str, reason: str) -> None:
    with pytest.raises(WebhookUrlRefused) as refused:
        parse_url(url)
    assert refused.value.details["reason"] == reason


async def test_a_checked_target_pins_the_address_and_keeps_the_host_name() -> None:
    target = await resolve_target("https://localhost:8443/hook?x=1", allow_private=True)
    assert target.address.is_loopback
    assert target.url.host == str(target.address)
    assert target.url.port == 8443
    assert target.url.path == "/hook"
    assert target.headers() == {"Host": "localhost:8443"}
    assert target.extensions() == {"sni_hostname": "localhost"}
    with pytest.raises(WebhookUrlRefused):
        await resolve_target("https://localhost:8443/hook", allow_private=False)
