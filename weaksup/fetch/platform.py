"""Platform pages (a watch page, not a media file) are handed to yt-dlp, an optional extra;
without it such rows are rejected with the install hint."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

INSTALL_HINT = "pip install 'weaksup[ytdlp]'"

#: Sites whose video URLs are pages (or players) rather than media files. yt-dlp, when
#: installed, also claims any other URL one of its site extractors knows.
PLATFORM_DOMAINS = (
    "youtube.com",
    "youtu.be",
    "vimeo.com",
    "tiktok.com",
    "instagram.com",
    "facebook.com",
    "fb.watch",
    "twitter.com",
    "x.com",
    "dailymotion.com",
    "twitch.tv",
    "bilibili.com",
    "reddit.com",
    "streamable.com",
)


def ytdlp_installed() -> bool:
    return importlib.util.find_spec("yt_dlp") is not None


def is_platform_page(url: str) -> bool:
    """True for a URL of a video platform's page (by domain)."""
    host = (urlsplit(url).hostname or "").lower()
    return any(host == d or host.endswith("." + d) for d in PLATFORM_DOMAINS)


def ytdlp_options(
    folder: Path, *, max_height: int, max_bytes: int, cookies: Path | None, proxy: str | None, user_agent: str
) -> dict[str, Any]:
    """yt-dlp options for one row: one file (no merging, which would need FFmpeg) of at most
    ``max_height`` lines and ``max_bytes``, written under ``folder``, quietly."""
    options: dict[str, Any] = {
        "format": f"b[height<={max_height}][ext=mp4]/b[height<={max_height}]/w",
        "outtmpl": str(folder / "video.%(ext)s"),
        "max_filesize": max_bytes,
        "noplaylist": True,
        "quiet": True,
        "no_warnings": True,
        "noprogress": True,
        "retries": 0,  # weaksup's own retry loop decides
        "http_headers": {"User-Agent": user_agent},
    }
    if cookies is not None:
        options["cookiefile"] = str(cookies)
    if proxy:
        options["proxy"] = proxy
    return options


def download_page(url: str, folder: Path, options: dict[str, Any]) -> tuple[Path, dict[str, Any]]:
    """Run yt-dlp on ``url`` into ``folder``; (the file, yt-dlp's info dict). Raises what yt-dlp raises."""
    import yt_dlp

    with yt_dlp.YoutubeDL(options) as ydl:
        info = ydl.extract_info(url, download=True)
    files = [p for p in folder.iterdir() if p.is_file() and not p.name.endswith((".part", ".ytdl"))]
    if not files:
        raise FileNotFoundError("yt-dlp wrote no file (over --max-bytes, or no format fits)")
    return max(files, key=lambda p: p.stat().st_size), dict(info or {})
