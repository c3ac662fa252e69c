"""Where a webhook may send: http(s) URLs whose host resolves to public addresses only
(unless the operator allows private ones). Checked when a webhook is created and again
before every delivery, which then connects to the very address that was checked - a DNS
answer that changes in between (rebinding) cannot steer it into the private network."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from typing import Any

import httpx

from chatter.domain.webhooks import IPAddress, is_public_address
from chatter.errors import WebhookUrlRefused

RESOLVE_TIMEOUT_S = 5.0
SCHEMES = ("http", "https")


@dataclass(frozen=True)
class Target:
    """A checked URL: connect to `url` (host replaced by the checked address) and present
    `host` in the Host header and TLS SNI, so virtual hosts and certificates still work."""

    url: httpx.URL
    host_header: str
    server_name: str
    address: IPAddress

    def headers(self) -> dict[str, str]:
        return {"Host": self.host_header}

    def extensions(self) -> dict[str, Any]:
        return {"sni_hostname": self.server_name} if self.url.scheme == "https" else {}


def parse_url(url: str) -> httpx.URL:
    """The URL if its form is acceptable (scheme and host), else WebhookUrlRefused."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise _refused(url, "invalid", f"Not a valid URL: {exc}.") from exc
    if parsed.scheme not in SCHEMES:
        raise _refused(url, "scheme", "Webhook URLs must use http or https.")
    if not parsed.host:
        raise _refused(url, "host", "Webhook URLs must name a host.")
    return parsed


async def resolve_target(url: str, *, allow_private: bool) -> Target:
    parsed = parse_url(url)
    addresses = await _resolve(url, parsed)
    if not allow_private:
        refused = [str(a) for a in addresses if not is_public_address(a)]
        if refused:
            raise _refused(
                url,
                "private_address",
                "The webhook URL resolves to a loopback, private, link-local or reserved "
                "address; an administrator can allow those "
                "(CHATTER_WEBHOOKS__ALLOW_PRIVATE_TARGETS).",
                addresses=refused,
            )
    address = addresses[0]
    return Target(
        url=parsed.copy_with(host=str(address)),
        host_header=parsed.netloc.decode(),
        server_name=parsed.host,
        address=address,
    )


async def _resolve(url: str, parsed: httpx.URL) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(parsed.host)]
    except ValueError:
        pass  # a name, not a literal address
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(RESOLVE_TIMEOUT_S):
            infos = await loop.getaddrinfo(
                parsed.host, parsed.port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
            )
    except (OSError, TimeoutError, UnicodeError) as exc:
        raise _refused(url, "unresolvable", f"The host {parsed.host!r} does not resolve.") from exc
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        # IPv6 scope ids ("fe80::1%eth0") are link-local anyway; drop them to parse.
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise _refused(url, "unresolvable", f"The host {parsed.host!r} does not resolve.")
    return addresses


def _refused(url: str, reason: str, message: str, **details: object) -> WebhookUrlRefused:
    return WebhookUrlRefused(message, details={"url": url, "reason": reason, **details})
