"""The settings of a fetch: one frozen dataclass whose fields carry their own help (the CLI's
option help is read from it) and say whether they change the output rows (those go into the
resume stamp, so a rerun with other settings never reuses rows made under the old ones)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from weaksup.errors import InputError


def _rows(default: Any, help: str) -> Any:  # noqa: A002 - the field's help text
    """A setting that changes what a row's outcome can be (stamped)."""
    return field(default=default, metadata={"help": help, "stamp": True})


def _how(default: Any, help: str) -> Any:  # noqa: A002
    """A setting of how the job runs (speed, politeness, output), not of its rows' outcome."""
    return field(default=default, metadata={"help": help, "stamp": False})


CONTACT_URL = "https://pypi.org/project/weaksup/"


@dataclass(frozen=True)
class FetchConfig:
    """``weaksup fetch``: every row of a videos table with a URL column to a verified local
    (or object-store) file, with provenance columns, resumable."""

    videos: Path | str = _how(None, "Videos table (Parquet, CSV or JSONL) with video_id and a URL column.")
    out: Path | str = _how(None, "Output folder (or fsspec URI): videos/<shard>/<id>.<ext> and fetched.parquet.")
    url_column: str = _how("url", "Column holding each video's URL ('uri' is used when it holds http(s) URLs).")
    concurrency: int = _how(16, "Requests in flight at once, over all hosts (per worker process).")
    host_concurrency: int = _how(4, "Requests in flight at once to one host (per worker process).")
    host_rate: float = _how(4.0, "Requests per second started to one host, at most (0 = no limit).")
    max_attempts: int = _rows(4, "Tries per URL on connection errors, timeouts, 429 and 5xx.")
    backoff_s: float = _how(1.0, "First retry delay in seconds; doubles each try, with jitter.")
    max_wait_s: float = _how(120.0, "Longest wait before a retry (a longer Retry-After gives up the row).")
    connect_timeout_s: float = _how(10.0, "Seconds to connect before the attempt fails.")
    read_timeout_s: float = _how(30.0, "Seconds without a byte from the server before the attempt fails.")
    min_bytes_per_s: float = _how(
        4096.0, "Slowest body accepted, in bytes per second over the whole transfer, once --read-timeout-s has passed."
    )
    max_redirects: int = _rows(5, "Redirects followed per URL.")
    max_bytes: int = _rows(2 << 30, "Largest video kept, in bytes (decoded body; larger ones are rejected).")
    breaker_failures: int = _how(8, "Failed attempts in a row after which a host is skipped for the rest of the job.")
    allow_private_hosts: bool = _rows(False, "Allow loopback, private and link-local addresses (tests, intranets).")
    ignore_opt_outs: bool = _rows(False, "Fetch even where robots.txt, X-Robots-Tag or --opt-out-list say no.")
    opt_out_list: Path | str | None = _rows(None, "Text file of URL prefixes, domains or * patterns not to fetch.")
    verify_tls: bool = _rows(True, "Verify TLS certificates.")
    user_agent: str = _how(
        f"weaksup/0.1 (+{CONTACT_URL})", "User-Agent header: names weaksup (the --contact is added to it)."
    )
    contact: str | None = _how(
        None, "How a site operator reaches whoever runs this fetch (an email or URL), sent in the User-Agent."
    )
    retry_rejected: bool = _how(False, "Retry the rows an earlier run rejected for a transient reason.")
    max_height: int = _rows(720, "yt-dlp rows: the tallest video format chosen.")
    cookies: Path | None = _how(None, "yt-dlp rows: a cookies.txt file passed to yt-dlp.")
    proxy: str | None = _how(None, "yt-dlp rows: a proxy URL passed to yt-dlp.")
    workers: int = _how(0, "Worker processes (0 = in this process; requests are concurrent either way).")
    chunk_size: int = _how(256, "Rows per resumable part.")
    progress: bool = _how(True, "Show a progress bar.")
    resume: bool = _how(True, "Reuse an earlier run's parts and rows made from the same input and settings.")
    resume_strict: bool = _how(False, "Stop on a stale part instead of redoing it.")
    engine: str = _how("local", "Where rows run: local (processes) or ray.")
    ray_address: str | None = _how(None, "Ray cluster to join (default: start a local one).")

    def __post_init__(self) -> None:
        if self.videos is None or self.out is None:
            raise InputError("fetch needs --videos and --out")
        for name in ("concurrency", "host_concurrency", "max_attempts", "chunk_size", "breaker_failures"):
            if getattr(self, name) < 1:
                raise InputError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        for name in ("host_rate", "backoff_s", "max_wait_s", "max_redirects", "workers", "min_bytes_per_s"):
            if getattr(self, name) < 0:
                raise InputError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(self, name)}")
        for name in ("connect_timeout_s", "read_timeout_s", "max_bytes", "max_height"):
            if getattr(self, name) <= 0:
                raise InputError(f"--{name.replace('_', '-')} must be > 0, got {getattr(self, name)}")

    def agent(self) -> str:
        """The User-Agent sent: ``user_agent`` plus ``contact`` when given."""
        return f"{self.user_agent} contact: {self.contact}" if self.contact else self.user_agent

    def stamp(self) -> dict[str, Any]:
        """The settings that change rows (a part or an earlier table is reused only under the same)."""
        return {f.name: str(getattr(self, f.name)) for f in fields(self) if f.metadata["stamp"]}


FIELD_HELP: dict[str, str] = {f.name: f.metadata["help"] for f in fields(FetchConfig)}
