"""Webhook rules as pure functions: the signature receivers verify, the retry schedule, and
which addresses a delivery may reach."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress

SIGNATURE_HEADER = "X-Chatter-Signature"
EVENT_ID_HEADER = "X-Chatter-Event-Id"
EVENT_TYPE_HEADER = "X-Chatter-Event-Type"
DELIVERY_ID_HEADER = "X-Chatter-Delivery-Id"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """Hex HMAC-SHA256 of `<timestamp>.<body>`: the timestamp is signed too, so a captured
    delivery cannot be replayed later under a fresh timestamp."""
    message = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    """`t=<unix seconds>,v1=<hex>`; `v1` names the scheme so it can change without
    breaking receivers that check the version."""
    return f"t={timestamp},v1={signature(secret, timestamp, body)}"


def verify_signature(secret: str, header: str, body: bytes) -> bool:
    """What a receiver does (the README shows the same in five lines)."""
    parts = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    if "t" not in parts or "v1" not in parts or not parts["t"].isdigit():
        return False
    expected = signature(secret, int(parts["t"]), body)
    return hmac.compare_digest(expected, parts["v1"])


def retry_delay_s(failed_attempts: int, *, base_s: float, factor: float, max_s: float) -> float:
    """Exponential backoff after the n-th failed attempt: base, base*factor, ... capped."""
    exponent = max(failed_attempts - 1, 0)
    # Capping the exponent first keeps huge attempt counts from overflowing the float.
    delay = base_s * factor ** min(exponent, 64)
    return float(min(delay, max_s))


def is_public_address(address: IPAddress) -> bool:
    """Whether `address` is on the public internet: not loopback, private, link-local,
    multicast, reserved or otherwise special (IPv4 mapped into IPv6 included)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast
