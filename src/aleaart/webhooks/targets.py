"""Where a webhook may go: http(s) URLs without control characters or spaces, whose host resolves only to public
addresses. Loopback, private, link-local (cloud metadata at 169.254.169.254), site-local, multicast, unspecified
and reserved addresses are refused, in IPv4 and IPv6 and in the forms that hide them (decimal 2130706433, octal
0177.0.0.1, hex 0x7f.1, IPv4-mapped ::ffff:127.0.0.1, NAT64 64:ff9b::7f00:1, 6to4 2002:7f00:1::, Teredo), and the
6to4 relay anycast 192.88.99.0/24. The check runs at request time and again when a delivery connects:
the address connected to is one that was checked, so DNS rebinding cannot slip past it."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from aleaart.errors import InvalidWebhook

MAX_URL_LENGTH = 2048
METADATA_ADDRESSES = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
NAT64 = ipaddress.ip_network("64:ff9b::/96")
SIX_TO_FOUR_RELAY = ipaddress.ip_network("192.88.99.0/24")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int


def parse_target(url: str) -> Target:
    """The URL's parts; InvalidWebhook when it is not an absolute http(s) URL."""
    if len(url) > MAX_URL_LENGTH:
        raise InvalidWebhook(f"webhook: the URL is longer than {MAX_URL_LENGTH} characters")
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in url):
        raise InvalidWebhook("webhook: the URL contains a space or a control character (percent-encode it)")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise InvalidWebhook(f"webhook: not a URL ({error})") from None
    if parts.scheme not in ("http", "https"):
        raise InvalidWebhook(f"webhook: only http and https URLs are allowed, not {parts.scheme or 'no scheme'!r}")
    if not parts.hostname:
        raise InvalidWebhook("webhook: the URL has no host")
    return Target(scheme=parts.scheme, host=parts.hostname,
                  port=port or (443 if parts.scheme == "https" else 80))


def address_problem(address: Address) -> str | None:
    """Why a webhook must not reach this address; None for a public one."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address_problem(address.ipv4_mapped)
        if address in NAT64:
            return address_problem(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        if address.sixtofour is not None:
            return address_problem(address.sixtofour)
        if address.teredo is not None:
            return address_problem(address.teredo[1])  # the client's address, which a relay delivers to
        if address.is_site_local:
            return "a site-local address"
    elif address in SIX_TO_FOUR_RELAY:
        return "the 6to4 relay anycast"
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    for problem, test in (("a loopback address", address.is_loopback), ("a multicast address", address.is_multicast),
                          ("a link-local address", address.is_link_local),
                          ("an unspecified address", address.is_unspecified),
                          ("a private address", address.is_private), ("a reserved address", address.is_reserved)):
        if test:
            return problem
    return None if address.is_global else "not a public address"


def resolve(target: Target) -> list[Address]:
    """Every address the host resolves to (numeric hosts in any form the C library reads, as connect would)."""
    try:
        found = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise InvalidWebhook(f"webhook: cannot resolve {target.host!r} ({error})") from None
    return list(dict.fromkeys(ipaddress.ip_address(info[4][0].split("%")[0]) for info in found))


def checked_addresses(target: Target) -> list[Address]:
    """The host's addresses, all public; InvalidWebhook naming the first that is not."""
    addresses = resolve(target)
    for address in addresses:
        if (problem := address_problem(address)) is not None:
            shown = target.host if target.host == str(address) else f"{target.host} ({address})"
            raise InvalidWebhook(f"webhook: {shown} is {problem}; webhooks go to public addresses only "
                                 "(ALEAART_WEBHOOK_ALLOW_PRIVATE=1 allows others, for local setups)")
    return addresses


def check_url(url: str, *, allow_private: bool) -> Target:
    """A webhook URL as a request gives it: refused (422) when it may not be sent to."""
    target = parse_target(url)
    if not allow_private:
        checked_addresses(target)
    return target


def shown_url(url: str) -> str:
    """The URL as others may see it (job answers, logs): scheme, host and port; its userinfo, path and query, where
    receivers keep secrets (Slack-style paths, tokens in the query), are left out."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(not a URL)"
    host = f"[{host}]" if ":" in host else host
    rest = "/…" if parts.path not in ("", "/") or parts.query or parts.fragment else "/"
    return f"{parts.scheme}://{host}{port}{rest}"


def target_of(url: str) -> str:
    """The receiver a URL reaches (scheme, host and port), which deliveries are limited and rested by."""
    try:
        target = parse_target(url)
    except InvalidWebhook:
        return url
    return f"{target.scheme}://{target.host}:{target.port}"
