"""One URL in, one verified file (or one rejected row) out: async HTTP within global and
per-host limits, retries with back-off, opt-outs, redirects checked hop by hop, size caps,
and the body checked as a video before it is named as the row's file.

Failures are values, never exceptions: every URL ends as a :class:`Outcome` whose ``error``
starts with a short kind ("http 404", "timeout", "opted out", ...) and whose ``retryable``
says whether ``--retry-rejected`` should try it again (network trouble, 429, 5xx).
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import os
import random
import shutil
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urljoin, urlsplit
from urllib.robotparser import RobotFileParser

import aiohttp

from weaksup import uris, video_io
from weaksup.errors import one_line
from weaksup.fetch.config import FetchConfig
from weaksup.fetch.optout import OptOutList, parse_robots, robots_allows, x_robots_opt_out
from weaksup.fetch.platform import INSTALL_HINT, download_page, is_platform_page, ytdlp_installed, ytdlp_options
from weaksup.fetch.safety import GuardedResolver, UnsafeUrl, check_url

REDIRECTS = frozenset({301, 302, 303, 307, 308})
CHUNK = 1 << 18
ROBOTS_MAX_BYTES = 512 << 10  # RFC 9309: crawlers may stop parsing after 500 KiB

#: Container formats PyAV names, to the file extension a fetched video gets.
_EXTENSIONS = {"mp4": "mp4", "mov": "mov", "webm": "webm", "matroska": "mkv", "avi": "avi", "flv": "flv"}
_EXTENSIONS.update({"mpegts": "ts", "mpeg": "mpg", "ogg": "ogv", "3gp": "3gp", "gif": "gif", "asf": "wmv"})


@dataclass
class Outcome:
    """How one URL ended: the output row's fetch columns (``file`` is the verified local file)."""

    status: str = "rejected"
    error: str | None = None
    retryable: bool = False
    http_status: int | None = None
    bytes: int | None = None
    sha256: str | None = None
    content_type: str | None = None
    attempts: int = 0
    final_url: str | None = None
    method: str = "http"
    file: Path | None = None
    extension: str | None = None


class Rejected(Exception):
    """An attempt ended in a way a retry cannot change (404, opt-out, not a video, too large)."""

    def __init__(self, reason: str, *, http_status: int | None = None, retryable: bool = False) -> None:
        super().__init__(reason)
        self.reason, self.http_status, self.retryable = reason, http_status, retryable


class Transient(Exception):
    """An attempt that may work later: a network error, a timeout, 429 or 5xx."""

    def __init__(self, reason: str, *, http_status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason, self.http_status, self.retry_after = reason, http_status, retry_after


@dataclass
class HostState:
    """What one worker process knows of a host (scheme://host:port) during a job."""

    next_start: float = 0.0  # monotonic time before which no request to it starts (rate, Retry-After)
    failures_in_a_row: int = 0  # failed attempts since its last answer (the circuit breaker)
    robots: RobotFileParser | None = None
    robots_unreachable: str | None = None  # why its robots.txt could not be read (then nothing is fetched from it)


@dataclass
class HostBook:
    """Per-process host state shared by every chunk of a job (rate limits and the breaker hold
    across chunks); reset by :func:`reset_hosts` when a job starts."""

    hosts: dict[str, HostState] = field(default_factory=lambda: defaultdict(HostState))


HOSTS = HostBook()


def reset_hosts() -> None:
    HOSTS.hosts.clear()


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    host = (parts.hostname or "").lower()
    return f"{parts.scheme.lower()}://{f'[{host}]' if ':' in host else host}:{port}"


def retry_after_seconds(value: str | None) -> float | None:
    """A ``Retry-After`` header in seconds (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time()) if when else None


def extension_for(format_name: str, content_type: str | None, url: str) -> str:
    """The file extension of a verified video: the URL's when it names a video, else from the container."""
    suffix = Path(urlsplit(url).path).suffix.lower().lstrip(".")
    if suffix in {"mp4", "m4v", "mov", "webm", "mkv", "avi", "flv", "ts", "mpg", "mpeg", "ogv", "3gp", "wmv", "gif"}:
        return suffix
    if content_type and "webm" in content_type:
        return "webm"
    for name in format_name.split(","):
        if name in _EXTENSIONS:
            return _EXTENSIONS[name]
    return "bin"


def check_video(path: Path) -> str:
    """The container format of a downloaded file when it holds a decodable-looking video
    stream; Rejected("not a video: ...") otherwise."""
    try:
        container, _ = video_io.open_video_stream(str(path))
    except Exception as exc:  # noqa: BLE001 - every PyAV/probe failure means the same: not a video
        reason = video_io.failure_reason(exc, with_type=False).replace(f"{path}: ", "").replace(str(path), "the body")
        raise Rejected(f"not a video: {reason}") from None
    with container:
        return container.format.name or ""


class BodyBuffer:
    """A response body on its way to a file: held in memory up to ``IN_MEMORY`` bytes (short
    videos: one write and hash off the event loop at the end), streamed to a temporary file
    past that, so memory stays flat in file size (16 bodies in flight hold at most 16 MB)."""

    IN_MEMORY = 1 << 20

    def __init__(self, folder: Path, stem: str) -> None:
        self.folder, self.stem = folder, stem
        self.buffer: bytearray | None = bytearray()
        self.file: BinaryIO | None = None
        self.path: Path | None = None
        self.digest = hashlib.sha256()
        self.size = 0

    def add(self, block: bytes) -> None:
        self.size += len(block)
        if self.buffer is not None and self.size <= self.IN_MEMORY:
            self.buffer += block
            return
        if self.file is None:  # spill: from here on the body streams to disk
            fd, name = tempfile.mkstemp(prefix=f"{self.stem}.", suffix=".part", dir=self.folder)
            self.file, self.path = os.fdopen(fd, "wb"), Path(name)
            self.file.write(self.buffer)
            self.digest.update(self.buffer)
            self.buffer = None
        self.digest.update(block)
        self.file.write(block)

    def finish(self) -> tuple[Path, str, str]:
        """(the temporary file, its sha256, its container format); Rejected when it is not a video."""
        if self.buffer is not None:
            fd, name = tempfile.mkstemp(prefix=f"{self.stem}.", suffix=".part", dir=self.folder)
            self.path = Path(name)
            with os.fdopen(fd, "wb") as f:
                f.write(self.buffer)
            self.digest.update(self.buffer)
            self.buffer = None
        else:
            assert self.file is not None
            self.file.close()
        assert self.path is not None
        return self.path, self.digest.hexdigest(), check_video(self.path)

    def discard(self) -> None:
        if self.file is not None:
            self.file.close()
        if self.path is not None:
            self.path.unlink(missing_ok=True)
        self.buffer = None


class Fetcher:
    """Fetches the URLs of one chunk concurrently; one per event loop (chunk)."""

    def __init__(self, cfg: FetchConfig, session: aiohttp.ClientSession, opt_outs: OptOutList, tmp: Path) -> None:
        self.cfg, self.session, self.opt_outs, self.tmp = cfg, session, opt_outs, tmp
        self.slots = asyncio.Semaphore(cfg.concurrency)
        self.host_slots: dict[str, asyncio.Semaphore] = defaultdict(lambda: asyncio.Semaphore(cfg.host_concurrency))
        self.robots_locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self.timeout = aiohttp.ClientTimeout(
            total=None, connect=cfg.connect_timeout_s, sock_connect=cfg.connect_timeout_s, sock_read=cfg.read_timeout_s
        )

    # ---- politeness ----------------------------------------------------------------------

    async def _wait_turn(self, origin: str) -> None:
        """Hold back until the host's rate limit (and any Retry-After it sent) lets a request start."""
        host, now = HOSTS.hosts[origin], time.monotonic()
        start = max(now, host.next_start)
        host.next_start = start + (1.0 / self.cfg.host_rate if self.cfg.host_rate > 0 else 0.0)
        if start > now:
            await asyncio.sleep(start - now)

    async def _robots(self, url: str, origin: str) -> RobotFileParser:
        host = HOSTS.hosts[origin]
        async with self.robots_locks[origin]:
            if host.robots is None:
                host.robots, host.robots_unreachable = await self._read_robots(origin)
        return host.robots

    async def _read_robots(self, origin: str) -> tuple[RobotFileParser, str | None]:
        """The host's robots.txt rules, and why it could not be read (5xx, network, timeout):
        RFC 9309 then says assume everything disallowed, which this job does (retryable rows)."""
        url = origin + "/robots.txt"
        headers = {"User-Agent": self.cfg.agent()}
        for _ in range(self.cfg.max_redirects + 1):
            try:
                check_url(url, allow_private_hosts=self.cfg.allow_private_hosts)
                await self._wait_turn(origin_of(url))
                async with self.session.get(url, allow_redirects=False, timeout=self.timeout, headers=headers) as resp:
                    if resp.status in REDIRECTS and resp.headers.get("Location"):
                        url = urljoin(url, resp.headers["Location"])
                        continue
                    body = await resp.content.read(ROBOTS_MAX_BYTES) if resp.status < 300 else b""
                    why = f"http {resp.status}" if resp.status >= 500 else None
                    return parse_robots(resp.status, body.decode("utf-8", "replace")), why
            except UnsafeUrl as exc:
                raise Rejected(f"refused: {exc}") from None
            except asyncio.TimeoutError:
                return parse_robots(None, ""), "timeout"
            except (aiohttp.ClientError, OSError) as exc:
                return parse_robots(None, ""), f"network: {one_line(exc)}"
        return parse_robots(None, ""), "too many redirects"

    # ---- one URL -------------------------------------------------------------------------

    async def fetch(self, url: str, stem: str) -> Outcome:
        """Every attempt at ``url`` until it is ok, rejected, or out of tries."""
        out = Outcome(final_url=url)
        try:
            check_url(url, allow_private_hosts=self.cfg.allow_private_hosts)
        except UnsafeUrl as exc:
            out.error = f"refused: {exc}"
            return out
        if not self.cfg.ignore_opt_outs:
            listed = self.opt_outs.match(url)
            if listed:
                out.error = f"opted out: on the opt-out list ({listed})"
                return out
        if is_platform_page(url):
            return await self._fetch_page(url, stem, out)
        for attempt in range(1, self.cfg.max_attempts + 1):
            out.attempts = attempt
            try:
                return await self._attempt(url, stem, out)
            except Rejected as exc:
                out.error, out.retryable = exc.reason, exc.retryable
                out.http_status = exc.http_status or out.http_status
                return out
            except Transient as exc:
                out.http_status = exc.http_status
                out.error, out.retryable = exc.reason, True
                if attempt == self.cfg.max_attempts:
                    out.error = f"{exc.reason} (after {attempt} attempts)"
                    return out
                delay = self.cfg.backoff_s * 2 ** (attempt - 1) * random.uniform(0.5, 1.5)
                if exc.retry_after is not None:
                    if exc.retry_after > self.cfg.max_wait_s:
                        out.error = f"{exc.reason}: Retry-After {exc.retry_after:.0f} s is over --max-wait-s"
                        return out
                    delay = max(delay, exc.retry_after)
                    host = HOSTS.hosts[origin_of(out.final_url or url)]
                    host.next_start = max(host.next_start, time.monotonic() + exc.retry_after)
                await asyncio.sleep(min(delay, self.cfg.max_wait_s))
        return out

    async def _attempt(self, url: str, stem: str, out: Outcome) -> Outcome:
        """One try: follow redirects hop by hop (each hop checked), then stream the body."""
        hop = url
        for _ in range(self.cfg.max_redirects + 1):
            out.final_url = hop
            try:
                check_url(hop, allow_private_hosts=self.cfg.allow_private_hosts)
            except UnsafeUrl as exc:
                raise Rejected(f"refused: {exc}" + (" (after a redirect)" if hop != url else "")) from None
            origin = origin_of(hop)
            host = HOSTS.hosts[origin]
            self._check_breaker(hop, host)
            if not self.cfg.ignore_opt_outs and not robots_allows(await self._robots(hop, origin), hop):
                if host.robots_unreachable:
                    raise Rejected(
                        f"robots.txt unreachable ({host.robots_unreachable}): the host counts as disallowing "
                        "for this job (RFC 9309)",
                        retryable=True,
                    )
                raise Rejected("opted out: robots.txt disallows it")
            async with self.host_slots[origin], self.slots:
                self._check_breaker(hop, host)  # again: others may have failed while this one waited
                await self._wait_turn(origin)
                try:
                    nxt = await self._request(hop, stem, out)
                except Transient:
                    host.failures_in_a_row += 1
                    raise
                host.failures_in_a_row = 0
            if nxt is None:
                return out
            hop = nxt
        raise Rejected(f"too many redirects (more than {self.cfg.max_redirects})")

    def _check_breaker(self, url: str, host: HostState) -> None:
        """A host that failed ``breaker_failures`` attempts in a row is skipped for the rest of the job."""
        if host.failures_in_a_row >= self.cfg.breaker_failures:
            raise Rejected(
                f"host unavailable: {urlsplit(url).hostname} failed {host.failures_in_a_row} attempts in a row "
                "(skipped for the rest of this job)",
                retryable=True,
            )

    async def _request(self, url: str, stem: str, out: Outcome) -> str | None:
        """GET ``url``: the redirect target, or None once the body is a verified file in ``out``."""
        headers = {"User-Agent": self.cfg.agent(), "Accept": "video/*, */*;q=0.5"}
        try:
            async with self.session.get(url, allow_redirects=False, timeout=self.timeout, headers=headers) as resp:
                out.http_status = resp.status
                if resp.status in REDIRECTS:
                    location = resp.headers.get("Location")
                    if not location:
                        raise Rejected(f"http {resp.status}: redirect without a Location", http_status=resp.status)
                    return urljoin(url, location)
                if resp.status == 429 or resp.status >= 500 or resp.status == 408:
                    raise Transient(
                        f"http {resp.status}",
                        http_status=resp.status,
                        retry_after=retry_after_seconds(resp.headers.get("Retry-After")),
                    )
                if resp.status >= 400:
                    raise Rejected(f"http {resp.status}: {resp.reason or 'client error'}", http_status=resp.status)
                if resp.status != 200:
                    raise Rejected(f"http {resp.status}: not a complete body", http_status=resp.status)
                await self._save_body(resp, stem, out)
                return None
        except (Rejected, Transient):
            raise
        except aiohttp.ClientConnectorCertificateError as exc:
            raise Rejected(f"TLS: certificate not valid ({one_line(exc, with_type=False)})") from None
        except UnsafeUrl as exc:
            raise Rejected(f"refused: {exc}") from None
        except asyncio.TimeoutError:
            raise Transient("timeout: the server sent nothing for too long") from None
        except aiohttp.ClientPayloadError as exc:
            raise Transient(f"network: body cut short ({one_line(exc, with_type=False)})") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise Transient(f"network: {one_line(exc)}") from None

    async def _save_body(self, resp: aiohttp.ClientResponse, stem: str, out: Outcome) -> None:
        """Stream the body to a temporary file with its sha256, within --max-bytes; checks that
        need headers come first, so an opted-out or oversized body is never read."""
        opted = x_robots_opt_out(resp.headers.getall("X-Robots-Tag", []))
        if opted and not self.cfg.ignore_opt_outs:
            raise Rejected(f"opted out: X-Robots-Tag {opted}", http_status=resp.status)
        ctype = resp.headers.get("Content-Type", "").split(";", 1)[0].strip().lower() or None
        out.content_type = ctype
        if ctype in ("text/html", "application/xhtml+xml"):
            hint = f" (a platform page? {INSTALL_HINT} and list its domain)" if not ytdlp_installed() else ""
            raise Rejected(f"not a video: the server sent an HTML page{hint}", http_status=resp.status)
        declared = resp.content_length
        if declared is not None and declared > self.cfg.max_bytes and not resp.headers.get("Content-Encoding"):
            raise Rejected(
                f"too large: {declared} bytes over --max-bytes {self.cfg.max_bytes}", http_status=resp.status
            )
        body = BodyBuffer(self.tmp, stem)
        started = time.monotonic()
        try:
            async for block in resp.content.iter_chunked(CHUNK):
                if body.size + len(block) > self.cfg.max_bytes:
                    raise Rejected(f"too large: over --max-bytes {self.cfg.max_bytes} bytes", http_status=resp.status)
                body.add(block)
                elapsed = time.monotonic() - started
                if elapsed > self.cfg.read_timeout_s and body.size < self.cfg.min_bytes_per_s * elapsed:
                    raise Transient(  # a trickling server would hold a slot for ever: sock_read never fires
                        f"timeout: {body.size / elapsed:.0f} bytes/s, under --min-bytes-per-s",
                        http_status=resp.status,
                    )
            n = body.size
            encoding = resp.headers.get("Content-Encoding", "identity").lower()
            if declared is not None and encoding == "identity" and n != declared:
                raise Transient(f"network: body cut short ({n} of {declared} bytes)", http_status=resp.status)
            if n == 0:
                raise Rejected("not a video: empty body", http_status=resp.status)
            path, sha256, fmt = await asyncio.to_thread(body.finish)
        except BaseException:
            body.discard()
            raise
        out.file, out.bytes, out.sha256 = path, n, sha256
        out.extension = extension_for(fmt, ctype, out.final_url or "")
        out.status, out.error, out.retryable = "ok", None, False

    async def _fetch_page(self, url: str, stem: str, out: Outcome) -> Outcome:
        """A platform page: yt-dlp (an optional extra) downloads it; the file is checked the same way."""
        out.method, out.attempts = "yt-dlp", 1
        if not ytdlp_installed():
            out.error = f"needs yt-dlp: a platform page, not a media file ({INSTALL_HINT})"
            return out
        folder = Path(tempfile.mkdtemp(prefix=f"{stem}.", dir=self.tmp))
        options = ytdlp_options(
            folder,
            max_height=self.cfg.max_height,
            max_bytes=self.cfg.max_bytes,
            cookies=self.cfg.cookies,
            proxy=self.cfg.proxy,
            user_agent=self.cfg.agent(),
        )
        try:
            async with self.slots:
                file, info = await asyncio.to_thread(download_page, url, folder, options)
            fmt = await asyncio.to_thread(check_video, file)
            size = file.stat().st_size
            if size > self.cfg.max_bytes:
                raise Rejected(f"too large: {size} bytes over --max-bytes {self.cfg.max_bytes}")
            digest = hashlib.sha256()
            with file.open("rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
            final = Path(tempfile.mkstemp(prefix=f"{stem}.", suffix=".part", dir=self.tmp)[1])
            os.replace(file, final)
        except Rejected as exc:
            out.error = exc.reason
            return out
        except Exception as exc:  # noqa: BLE001 - yt-dlp's errors are many; one line each
            out.error, out.retryable = f"yt-dlp: {one_line(exc, with_type=False)}", True
            return out
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        out.file, out.bytes, out.sha256 = final, size, digest.hexdigest()
        out.final_url = str(info.get("webpage_url") or url)
        out.content_type = f"video/{info.get('ext') or 'mp4'}"
        out.extension = extension_for(fmt, out.content_type, "")
        out.status, out.error, out.retryable = "ok", None, False
        return out


def make_session(cfg: FetchConfig) -> aiohttp.ClientSession:
    """The session of one chunk: guarded DNS unless private hosts are allowed, TLS verified by default."""
    connector = aiohttp.TCPConnector(
        limit=cfg.concurrency,
        limit_per_host=cfg.host_concurrency,
        ssl=None if cfg.verify_tls else False,
        resolver=None if cfg.allow_private_hosts else GuardedResolver(),
    )
    return aiohttp.ClientSession(connector=connector, trust_env=False, auto_decompress=True)


def local_tmp_dir(out: str | Path) -> Path:
    """Where bodies are streamed before they are verified: inside the output's videos folder for a
    local output (so the final rename is atomic), else a local temporary folder."""
    if uris.is_local(out):
        path = uris.local_path(out) / "videos" / ".incoming"
    else:
        path = Path(tempfile.gettempdir()) / "weaksup-fetch-incoming"
    path.mkdir(parents=True, exist_ok=True)
    return path
