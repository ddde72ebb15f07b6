"""What a URL list may make weaksup fetch: http(s) only, public addresses only (checked on the
DNS answer the connection really uses, so a redirect or a rebinding name cannot reach
loopback, private or link-local hosts), and file names that the row cannot steer."""

from __future__ import annotations

import hashlib
import ipaddress
import re
import socket
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

SCHEMES = ("http", "https")


class UnsafeUrl(Exception):
    """A URL (or a redirect, or a DNS answer) weaksup refuses to follow; the message says why.

    Not an OSError on purpose: aiohttp wraps OSErrors from the resolver into connection errors,
    which are retried; an unsafe address must be a final refusal."""


def blocked_reason(address: str) -> str | None:
    """Why ``address`` (an IP literal) may not be fetched from, or None for a public address."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for kind, flag in (
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("private", ip.is_private),
        ("multicast", ip.is_multicast),
        ("unspecified", ip.is_unspecified),
        ("reserved", ip.is_reserved),
    ):
        if flag:
            return f"{kind} address"
    return None


def check_url(url: str, *, allow_private_hosts: bool) -> str:
    """The host of ``url`` when weaksup may request it; UnsafeUrl otherwise (another scheme,
    no host, or an IP literal of a loopback/private/link-local network)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise UnsafeUrl(f"malformed url ({exc})") from None
    if parts.scheme.lower() not in SCHEMES:
        raise UnsafeUrl(f"scheme {parts.scheme or '(none)'!r} is not fetched (http and https only)")
    host = parts.hostname
    if not host:
        raise UnsafeUrl("url has no host")
    if not allow_private_hosts:
        why = blocked_reason(host)
        if why:
            raise UnsafeUrl(f"{host} is a {why} (refused without --allow-private-hosts)")
    return host


class GuardedResolver(AbstractResolver):
    """DNS resolution that drops loopback, private and link-local answers, so a public-looking
    name that resolves to an internal address is refused at the moment of connecting."""

    def __init__(self) -> None:
        self._inner = ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        answers = await self._inner.resolve(host, port, family)
        public = [a for a in answers if blocked_reason(a["host"]) is None]
        if not public:
            where = f"a {blocked_reason(answers[0]['host'])} ({answers[0]['host']})" if answers else "no address"
            raise UnsafeUrl(f"{host} resolves to {where} (refused without --allow-private-hosts)")
        return public

    async def close(self) -> None:
        await self._inner.close()


_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


def file_stem(video_id: str) -> tuple[str, str]:
    """(shard folder, file stem) of a video: a sanitised prefix of its id plus a hash of the
    whole id, so two ids never share a file and no id can name a path (``../``, ``/``, NUL)."""
    digest = hashlib.sha256(video_id.encode("utf-8", "surrogatepass")).hexdigest()
    cleaned = _UNSAFE_CHARS.sub("_", video_id).strip("._-")[:80] or "video"
    return digest[:2], f"{cleaned}-{digest[:12]}"
