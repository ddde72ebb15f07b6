"""weaksup.fetch: every fault a web server can throw at a fetch, each on a local HTTP server.

The server (a threaded ``http.server``) answers by path; each test names the paths it needs.
Fetches run with ``--allow-private-hosts`` (the server is on 127.0.0.1) except where the
refusal of private hosts is what is tested; back-off is shortened so retries take
milliseconds.
"""

from __future__ import annotations

import gzip
import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import assert_input_error, write_clip

from weaksup.blocks import TableInput
from weaksup.bulk import StaleResumeWarning
from weaksup.errors import InputError
from weaksup.fetch.config import FetchConfig
from weaksup.fetch.fetch import fetch_videos
from weaksup.fetch.optout import x_robots_opt_out
from weaksup.fetch.safety import UnsafeUrl, check_url, file_stem
from weaksup.tables import load_schema

ROBOTS = "User-agent: *\nDisallow: /private/\n"


class Faults(http.server.BaseHTTPRequestHandler):
    """Answers by path; ``hits`` counts requests per path (for "fail n times, then serve")."""

    video: bytes = b""
    hits: Counter = Counter()
    agents: list[str] = []
    robots_status = 200
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def _send(self, status: int, body: bytes = b"", headers: dict | None = None) -> None:
        self.send_response(status)
        headers = {"Content-Type": "video/mp4", "Content-Length": str(len(body)), **(headers or {})}
        for k, v in headers.items():
            if v is not None:
                self.send_header(k, v)
        self.end_headers()
        if body:
            self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: C901 - one branch per fault, read top to bottom
        Faults.agents.append(self.headers.get("User-Agent", ""))
        n = self.hits[self.path] = self.hits[self.path] + 1
        path = self.path.split("?", 1)[0]
        if path == "/robots.txt":
            if self.robots_status != 200:
                return self._send(self.robots_status, b"", {"Content-Type": "text/plain"})
            return self._send(200, ROBOTS.encode(), {"Content-Type": "text/plain"})
        if path.startswith(("/ok/", "/private/")):
            return self._send(200, self.video)
        if path.startswith("/429-then-ok"):
            retry = "0" if "with-retry-after" in path else None
            return self._send(429, b"slow down", {"Retry-After": retry}) if n == 1 else self._send(200, self.video)
        if path == "/429-long-retry-after.mp4":
            return self._send(429, b"", {"Retry-After": "3600"})
        if path == "/503-then-ok.mp4":
            return self._send(503) if n == 1 else self._send(200, self.video)
        if path == "/503-always.mp4":
            return self._send(503)
        if path.startswith("/reset-mid-body"):
            if n == 1 or "always" in path:
                self.send_response(200)
                self.send_header("Content-Type", "video/mp4")
                self.send_header("Content-Length", str(len(self.video)))
                self.end_headers()
                self.wfile.write(self.video[: len(self.video) // 2])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(2)
                return
            return self._send(200, self.video)
        if path == "/trickle.mp4":  # every byte in time for the read timeout, the whole far too slowly
            self.send_response(200)
            self.send_header("Content-Type", "video/mp4")
            self.send_header("Content-Length", str(len(self.video)))
            self.end_headers()
            try:
                for i in range(0, len(self.video), 100):
                    self.wfile.write(self.video[i : i + 100])
                    self.wfile.flush()
                    time.sleep(0.1)
            except OSError:  # the client gave up
                pass
            self.close_connection = True
            return
        if path == "/stall.mp4":
            time.sleep(3)
            return self._send(200, self.video)
        if path == "/missing.mp4":
            return self._send(404, b"no", {"Content-Type": "text/plain"})
        if path == "/loop":
            return self._send(302, b"", {"Location": "/loop"})
        if path == "/redirect-to-ok":
            return self._send(302, b"", {"Location": "/ok/r.mp4"})
        if path == "/redirect-to-file":
            return self._send(302, b"", {"Location": "file:///etc/passwd"})
        if path == "/page.mp4":
            return self._send(200, b"<html><body>watch here</body></html>", {"Content-Type": "text/html"})
        if path == "/text.mp4":
            return self._send(200, b"this is not a video\n" * 50)
        if path == "/big.mp4":
            return self._send(200, self.video + b"\0" * 200_000)
        if path == "/big-chunked.mp4":  # no Content-Length: only the count of bytes read can stop it
            self.send_response(200)
            self.send_header("Content-Type", "video/mp4")
            self.send_header("Connection", "close")
            self.end_headers()
            for _ in range(50):
                self.wfile.write(b"\0" * 10_000)
            self.close_connection = True
            return
        if path == "/gzip-bomb.mp4":
            body = gzip.compress(b"\0" * 5_000_000)
            return self._send(200, body, {"Content-Encoding": "gzip"})
        if path == "/noai.mp4":
            return self._send(200, self.video, {"X-Robots-Tag": "noai"})
        if path == "/other-bot-noindex.mp4":
            return self._send(200, self.video, {"X-Robots-Tag": "otherbot: noindex"})
        return self._send(404, b"")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> str:
    Faults.video = write_clip(tmp_path_factory.mktemp("fetch-src") / "v.mp4").read_bytes()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Faults)
    httpd.daemon_threads = True
    httpd.handle_error = lambda *_: None  # connections the faults cut on purpose are not errors
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(autouse=True)
def fresh_hits() -> None:
    Faults.hits = Counter()


def videos_table(tmp_path: Path, urls: dict[str, str], **extra: list) -> Path:
    path = tmp_path / "videos.parquet"
    pq.write_table(pa.table({"video_id": list(urls), "url": list(urls.values()), **extra}), path)
    return path


def fetch(tmp_path: Path, urls: dict[str, str], out: str = "out", **kw: object) -> tuple[dict[str, dict], dict]:
    settings = {"allow_private_hosts": True, "backoff_s": 0.01, "progress": False, "read_timeout_s": 1.0, **kw}
    table, summary = fetch_videos(FetchConfig(videos=videos_table(tmp_path, urls), out=tmp_path / out, **settings))
    table = table.read()
    return {r["video_id"]: r for r in table.to_pylist()}, summary


def assert_no_partial_files(out: Path, rows: dict[str, dict]) -> None:
    """Files under OUT/videos are exactly the ok rows' files, each whole (its sha256)."""
    import hashlib

    files = sorted(p for p in (out / "videos").rglob("*") if p.is_file())
    ok = sorted(Path(r["uri"]) for r in rows.values() if r["status"] == "ok")
    assert files == ok
    for r in rows.values():
        if r["status"] == "ok":
            assert hashlib.sha256(Path(r["uri"]).read_bytes()).hexdigest() == r["sha256"]


def test_ok_rows_are_verified_videos_with_provenance(tmp_path: Path, server: str) -> None:
    rows, summary = fetch(tmp_path, {"a": f"{server}/ok/a.mp4", "b/../../x": f"{server}/redirect-to-ok"})
    a, b = rows["a"], rows["b/../../x"]
    assert a["status"] == "ok" and a["http_status"] == 200 and a["attempts"] == 1
    assert a["bytes"] == len(Faults.video) and a["content_type"] == "video/mp4" and a["method"] == "http"
    assert Path(a["uri"]).parent.parent == tmp_path / "out" / "videos" and a["uri"].endswith(".mp4")
    assert b["status"] == "ok" and b["final_url"] == f"{server}/ok/r.mp4"
    assert (tmp_path / "out" / "videos") in Path(b["uri"]).parents  # the id cannot steer the path
    assert summary["ok"] == 2 and summary["rejected"] == 0 and summary["bytes"] == 2 * len(Faults.video)
    assert summary["user_agent"].startswith("weaksup/") and Faults.agents[-1] == summary["user_agent"]
    _, summary = fetch(tmp_path, {"a": f"{server}/ok/a.mp4"}, "out2", contact="data-team@example.org")
    assert Faults.agents[-1] == summary["user_agent"] and summary["user_agent"].endswith(
        "contact: data-team@example.org"
    )
    assert_no_partial_files(tmp_path / "out", rows)


def test_transient_faults_are_retried_until_they_pass(tmp_path: Path, server: str) -> None:
    rows, _ = fetch(
        tmp_path,
        {
            "ra": f"{server}/429-then-ok-with-retry-after.mp4",
            "nora": f"{server}/429-then-ok.mp4",
            "503": f"{server}/503-then-ok.mp4",
            "reset": f"{server}/reset-mid-body.mp4",
        },
    )
    for vid, r in rows.items():
        assert r["status"] == "ok" and r["attempts"] == 2, (vid, r)
    assert_no_partial_files(tmp_path / "out", rows)


def test_faults_that_stay_become_rejected_rows_with_reasons(tmp_path: Path, server: str) -> None:
    rows, summary = fetch(
        tmp_path,
        {
            "404": f"{server}/missing.mp4",
            "503": f"{server}/503-always.mp4",
            "cut": f"{server}/reset-mid-body-always.mp4",
            "stall": f"{server}/stall.mp4",
            "trickle": f"{server}/trickle.mp4",
            "loop": f"{server}/loop",
            "html": f"{server}/page.mp4",
            "text": f"{server}/text.mp4",
            "long-wait": f"{server}/429-long-retry-after.mp4",
        },
        max_attempts=2,
    )
    expect = {
        "404": ("http 404", False),
        "503": ("http 503", True),
        "cut": ("network: body cut short", True),
        "stall": ("timeout", True),
        "trickle": ("timeout: ", True),
        "loop": ("too many redirects", False),
        "html": ("not a video: the server sent an HTML page", False),
        "text": ("not a video", False),
        "long-wait": ("http 429: Retry-After 3600 s is over --max-wait-s", True),
    }
    for vid, (reason, retryable) in expect.items():
        r = rows[vid]
        assert r["status"] == "rejected" and r["error"].startswith(reason), (vid, r["error"])
        assert r["retryable"] is retryable, (vid, r)
        assert r["uri"] == ""  # a valid videos table whose rejected rows match rejects and nothing requests again
    assert rows["404"]["attempts"] == 1 and rows["503"]["attempts"] == 2
    assert summary["rows"] == 9 and summary["ok"] + summary["rejected"] == 9 and summary["retryable"] == 5
    assert "under --min-bytes-per-s" in rows["trickle"]["error"]
    assert_no_partial_files(tmp_path / "out", rows)


def test_size_limits_apply_to_the_declared_and_the_decoded_body(tmp_path: Path, server: str) -> None:
    rows, _ = fetch(
        tmp_path,
        {"big": f"{server}/big.mp4", "chunked": f"{server}/big-chunked.mp4", "bomb": f"{server}/gzip-bomb.mp4"},
        max_bytes=100_000,
    )
    for vid, r in rows.items():
        assert r["status"] == "rejected" and r["error"].startswith("too large"), (vid, r)
    assert rows["big"]["error"].startswith(f"too large: {len(Faults.video) + 200_000} bytes")
    assert_no_partial_files(tmp_path / "out", rows)


def test_opt_outs_are_honoured_unless_ignored_explicitly(tmp_path: Path, server: str) -> None:
    (tmp_path / "optout.txt").write_text("# our list\n127.0.0.1/never\n*/ok/listed*\n")
    urls = {
        "robots": f"{server}/private/a.mp4",
        "noai": f"{server}/noai.mp4",
        "listed": f"{server}/ok/listed.mp4",
        "other-bot": f"{server}/other-bot-noindex.mp4",
    }
    rows, summary = fetch(tmp_path, urls, opt_out_list=tmp_path / "optout.txt")
    assert rows["robots"]["error"] == "opted out: robots.txt disallows it"
    assert rows["noai"]["error"] == "opted out: X-Robots-Tag noai"
    assert rows["listed"]["error"].startswith("opted out: on the opt-out list") and ":3 " in rows["listed"]["error"]
    assert rows["other-bot"]["status"] == "ok"  # a rule for another crawler
    assert summary["opt_outs_honoured"] is True
    assert not any(r["retryable"] for r in rows.values() if r["status"] != "ok")
    rows, summary = fetch(tmp_path, urls, "out2", ignore_opt_outs=True, opt_out_list=tmp_path / "optout.txt")
    assert all(r["status"] == "ok" for r in rows.values()) and summary["opt_outs_honoured"] is False


def test_x_robots_tag_directives() -> None:
    assert x_robots_opt_out(["noindex, nofollow"]) == "noindex"
    assert x_robots_opt_out(["weaksup: noai"]) == "noai"
    assert x_robots_opt_out(["googlebot: noai"]) is None
    assert x_robots_opt_out(["max-snippet: 20, nofollow"]) is None
    assert x_robots_opt_out(["unavailable_after: 25 Jun 2010 15:00:00 PST"]) is None


def test_private_hosts_and_other_schemes_are_refused(tmp_path: Path, server: str) -> None:
    port = server.rsplit(":", 1)[1]
    rows, _ = fetch(
        tmp_path,
        {
            "loopback": f"{server}/ok/a.mp4",
            "by-name": f"http://localhost:{port}/ok/a.mp4",  # the DNS answer is checked, not the name
            "file": "file:///etc/passwd",
            "metadata": "http://169.254.169.254/latest/meta-data/",
        },
        allow_private_hosts=False,
        max_attempts=1,
    )
    assert rows["loopback"]["error"].startswith("refused: 127.0.0.1 is a loopback address")
    assert rows["by-name"]["error"].startswith("refused: localhost resolves to a loopback address")
    assert rows["file"]["error"].startswith("refused: scheme 'file'")
    assert rows["metadata"]["error"].startswith("refused: 169.254.169.254 is a link-local address")
    assert Faults.hits["/ok/a.mp4"] == 0  # nothing reached the server
    rows, _ = fetch(tmp_path, {"to-file": f"{server}/redirect-to-file"}, "out2")
    assert (
        rows["to-file"]["error"].startswith("refused: scheme 'file'") and "after a redirect" in rows["to-file"]["error"]
    )


def test_url_checks_and_file_names() -> None:
    with pytest.raises(UnsafeUrl, match="http and https only"):
        check_url("ftp://example.com/a.mp4", allow_private_hosts=True)
    assert check_url("https://example.com/a.mp4", allow_private_hosts=False) == "example.com"
    shard, stem = file_stem("../../etc/passwd")
    assert "/" not in stem and ".." not in stem and len(shard) == 2
    assert file_stem("a b") != file_stem("a_b")  # sanitising never merges two ids


def test_platform_pages_without_yt_dlp_name_the_extra(tmp_path: Path, server: str, monkeypatch) -> None:
    monkeypatch.setattr("weaksup.fetch.client.ytdlp_installed", lambda: False)
    rows, _ = fetch(tmp_path, {"yt": "https://www.youtube.com/watch?v=abc"})
    assert rows["yt"]["error"] == "needs yt-dlp: a platform page, not a media file (pip install 'weaksup[ytdlp]')"
    assert rows["yt"]["method"] == "yt-dlp"


def test_platform_pages_go_through_yt_dlp_with_the_users_options(tmp_path: Path, server: str, monkeypatch) -> None:
    seen = {}

    def fake_download(url: str, folder: Path, options: dict) -> tuple[Path, dict]:
        seen.update(options, url=url)
        (folder / "video.mp4").write_bytes(Faults.video)
        return folder / "video.mp4", {"webpage_url": url, "ext": "mp4"}

    monkeypatch.setattr("weaksup.fetch.client.ytdlp_installed", lambda: True)
    monkeypatch.setattr("weaksup.fetch.client.download_page", fake_download)
    (tmp_path / "cookies.txt").write_text("# Netscape HTTP Cookie File\n")
    rows, _ = fetch(
        tmp_path,
        {"yt": "https://youtu.be/abc"},
        max_height=360,
        cookies=tmp_path / "cookies.txt",
        proxy="socks5://127.0.0.1:1080",
    )
    assert rows["yt"]["status"] == "ok" and rows["yt"]["method"] == "yt-dlp"
    assert "height<=360" in seen["format"] and seen["cookiefile"] == str(tmp_path / "cookies.txt")
    assert seen["proxy"] == "socks5://127.0.0.1:1080" and "weaksup" in seen["http_headers"]["User-Agent"]


def test_every_row_once_with_its_columns_and_bad_rows_rejected(tmp_path: Path, server: str) -> None:
    path = tmp_path / "videos.csv"
    path.write_text(
        "video_id,uri,licence,hashtags\n"
        f"1,{server}/ok/1.mp4,cc-by,#surfing\n"
        f"2,,cc0,#skiing\n"
        f"1,{server}/ok/dup.mp4,cc-by,#x\n"
    )
    table, summary = fetch_videos(
        FetchConfig(videos=path, out=tmp_path / "out", allow_private_hosts=True, progress=False)
    )
    table = table.read()
    rows = table.to_pylist()
    assert [r["video_id"] for r in rows] == ["1", "2", "1"]
    assert [r["status"] for r in rows] == ["ok", "rejected", "rejected"]
    assert rows[1]["error"].startswith("no url") and rows[2]["error"].startswith("duplicate video_id: row 0")
    assert rows[0]["licence"] == "cc-by" and rows[0]["url"] == f"{server}/ok/1.mp4" and rows[0]["uri"] != rows[0]["url"]
    assert summary["rows"] == 3


def test_output_chains_into_probe_and_match(tmp_path: Path, server: str, cli) -> None:
    path = tmp_path / "videos.parquet"
    urls = [f"{server}/ok/a.mp4", f"{server}/missing.mp4", f"{server}/ok/b.mp4"]
    pq.write_table(pa.table({"video_id": ["a", "gone", "b"], "url": urls, "hashtags": [["surfing"]] * 3}), path)
    fetch_videos(FetchConfig(videos=path, out=tmp_path / "out", allow_private_hosts=True, progress=False))
    fetched = str(tmp_path / "out" / "fetched.parquet")
    result = cli("probe", "--videos", fetched, "--out", str(tmp_path / "probe.parquet"), "--no-progress")
    assert result.exit_code == 0, result.output
    probe = {r["video_id"]: r for r in pq.read_table(tmp_path / "probe.parquet").to_pylist()}
    assert probe["a"]["status"] == "ok" and probe["gone"]["status"] == "rejected"
    (tmp_path / "labels.txt").write_text("surfing\n")
    labels = str(tmp_path / "labels.parquet")
    result = cli("build-labels", "--source", "file", "--labels-file", str(tmp_path / "labels.txt"), "--out", labels)
    assert result.exit_code == 0, result.output
    manifest = tmp_path / "manifest.parquet"
    hits = sum(Faults.hits.values())
    args = ["match", "--videos", fetched, "--labels", labels, "--out", str(manifest), "--min-videos", "1"]
    result = cli(*args, "--keep-columns", "url,sha256", "--no-progress")
    assert result.exit_code == 0, result.output
    kept = pq.read_table(manifest).to_pylist()
    assert [r["video_id"] for r in kept] == ["a", "b"] and kept[0]["url"] == urls[0] and kept[0]["sha256"]
    rejects = pq.read_table(tmp_path / "manifest.rejects.parquet").to_pylist()
    assert [(r["video_id"], r["reason"]) for r in rejects] == [("gone", "empty uri")]
    assert sum(Faults.hits.values()) == hits  # nothing after fetch asked the server again


def test_bad_input_is_one_line(tmp_path: Path, cli) -> None:
    (tmp_path / "v.csv").write_text("video_id,link\n1,http://example.com/a.mp4\n")
    result = cli("fetch", "--videos", str(tmp_path / "v.csv"), "--out", str(tmp_path / "o"))
    assert_input_error(result, "v.csv", "no URL column 'url'", "--url-column")
    result = cli("fetch", "--videos", str(tmp_path / "v.csv"), "--out", str(tmp_path / "o"), "--concurrency", "0")
    assert_input_error(result, "--concurrency must be at least 1")


def test_a_finished_run_is_reused_and_retry_rejected_redoes_only_transient_failures(
    tmp_path: Path, server: str
) -> None:
    urls = {"ok": f"{server}/ok/a.mp4", "404": f"{server}/missing.mp4", "503": f"{server}/503-then-ok.mp4"}
    rows, _ = fetch(tmp_path, urls, max_attempts=1)
    assert rows["503"]["status"] == "rejected" and rows["503"]["retryable"]
    before = dict(Faults.hits)
    rows2, summary = fetch(tmp_path, urls, max_attempts=1)
    assert Faults.hits == before and summary["reused_from_earlier_run"] == 3  # nothing fetched again
    assert rows2["ok"]["sha256"] == rows["ok"]["sha256"] and rows2["503"]["status"] == "rejected"
    rows3, summary = fetch(tmp_path, urls, max_attempts=1, retry_rejected=True)
    assert rows3["503"]["status"] == "ok" and rows3["404"]["status"] == "rejected"
    assert Faults.hits["/missing.mp4"] == 1 and Faults.hits["/ok/a.mp4"] == 1  # never retried, never refetched
    assert summary["reused_from_earlier_run"] == 2
    with pytest.warns(StaleResumeWarning, match="other settings"):
        rows4, summary = fetch(tmp_path, urls, max_attempts=2)  # other settings: nothing reused
    assert summary["reused_from_earlier_run"] == 0


def test_circuit_breaker_skips_a_host_that_keeps_failing(tmp_path: Path, server: str) -> None:
    urls = {f"v{i}": f"{server}/503-always.mp4?{i}" for i in range(6)}
    rows, _ = fetch(tmp_path, urls, max_attempts=1, breaker_failures=3, concurrency=1)
    skipped = [r for r in rows.values() if r["error"].startswith("host unavailable")]
    assert len(skipped) == 3 and all(r["retryable"] for r in skipped)
    assert sum(v for k, v in Faults.hits.items() if k.startswith("/503-always")) == 3


def test_rate_limit_spaces_requests_to_a_host(tmp_path: Path, server: str) -> None:
    t0 = time.perf_counter()
    rows, _ = fetch(tmp_path, {f"v{i}": f"{server}/ok/{i}.mp4" for i in range(5)}, host_rate=10.0)
    assert all(r["status"] == "ok" for r in rows.values())
    assert time.perf_counter() - t0 >= 0.5  # robots.txt + 5 files at 10 per second


@pytest.mark.slow
def test_kill_9_then_rerun_gives_every_row_once(tmp_path: Path, server: str) -> None:
    urls = {f"v{i:02d}": f"{server}/ok/{i}.mp4" for i in range(40)}
    videos = videos_table(tmp_path, urls)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "weaksup.cli.main", "fetch", "--videos", str(videos), "--out", str(out)]
    cmd += ["--allow-private-hosts", "--chunk-size", "4", "--host-rate", "8", "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    parts = out / "fetched.parquet.parts"
    deadline = time.time() + 60
    while time.time() < deadline and len(list(parts.glob("*/part-*.parquet"))) < 2:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "fetched.parquet").exists()
    done = sum(pq.read_metadata(p).num_rows for p in parts.glob("*/part-*.parquet"))
    assert 0 < done < 40
    before = sum(Faults.hits.values())
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    table = pq.read_table(out / "fetched.parquet")
    assert table.column("video_id").to_pylist() == list(urls)
    assert set(table.column("status").to_pylist()) == {"ok"}
    assert sum(Faults.hits.values()) - before <= 40 - done + 4  # the finished parts were not fetched again
    assert_no_partial_files(out, {r["video_id"]: r for r in table.to_pylist()})


def test_object_store_destination(tmp_path: Path, server: str) -> None:
    fsspec = pytest.importorskip("fsspec")
    root = f"memory://weaksup-fetch-{os.getpid()}"
    try:
        table, summary = fetch_videos(
            FetchConfig(
                videos=videos_table(tmp_path, {"a": f"{server}/ok/a.mp4"}),
                out=root,
                allow_private_hosts=True,
                progress=False,
            )
        )
        table = table.read()
        row = table.to_pylist()[0]
        assert row["status"] == "ok" and row["uri"].startswith(f"{root}/videos/")
        fs = fsspec.filesystem("memory")
        assert fs.cat_file(row["uri"].removeprefix("memory://")) == Faults.video
        assert fs.exists(f"{root}/fetched.parquet".removeprefix("memory://"))
        assert json.loads(fs.cat_file(f"{root}/fetched.summary.json".removeprefix("memory://")))["ok"] == 1
    finally:
        fs = fsspec.filesystem("memory")
        if fs.exists(root.removeprefix("memory://")):
            fs.rm(root.removeprefix("memory://"), recursive=True)


def test_a_served_folder_fetches_back_byte_for_byte(tmp_path: Path) -> None:
    from weaksup.fetch.serve import serve_folder, urls_for

    root = tmp_path / "corpus"
    (root / "sub dir").mkdir(parents=True)
    files = [write_clip(root / "a.mp4"), write_clip(root / "sub dir" / "b c.mp4", 90)]
    videos = pa.table({"video_id": ["a", "b"], "uri": [str(f) for f in files], "hashtags": [["x"], ["y"]]})
    with serve_folder(root) as base:
        urls = urls_for(videos, root, base)
        assert urls.column_names == ["video_id", "hashtags", "url"]
        pq.write_table(urls, tmp_path / "urls.parquet")
        table, _ = fetch_videos(
            FetchConfig(
                videos=tmp_path / "urls.parquet", out=tmp_path / "out", allow_private_hosts=True, progress=False
            )
        )
        table = table.read()
    for row, src in zip(table.to_pylist(), files):
        assert row["status"] == "ok" and Path(row["uri"]).read_bytes() == src.read_bytes(), row
    assert table.column("hashtags").to_pylist() == [["x"], ["y"]]


def test_bodies_over_the_memory_limit_stream_to_disk(tmp_path: Path, server: str, monkeypatch) -> None:
    from weaksup.fetch.client import BodyBuffer

    monkeypatch.setattr(BodyBuffer, "IN_MEMORY", 1000)  # the test video is a few KB: it spills after 1000 bytes
    rows, _ = fetch(tmp_path, {"a": f"{server}/ok/a.mp4", "cut": f"{server}/reset-mid-body-always.mp4"})
    assert rows["a"]["status"] == "ok" and rows["cut"]["status"] == "rejected"
    assert_no_partial_files(tmp_path / "out", rows)


@pytest.mark.slow
def test_s3_destination_on_moto(tmp_path: Path, server: str, s3_bucket: str) -> None:
    import fsspec

    out = f"{s3_bucket}/fetched"
    table, summary = fetch_videos(
        FetchConfig(
            videos=videos_table(tmp_path, {"a": f"{server}/ok/a.mp4", "gone": f"{server}/missing.mp4"}),
            out=out,
            allow_private_hosts=True,
            progress=False,
        )
    )
    table = table.read()
    rows = {r["video_id"]: r for r in table.to_pylist()}
    assert rows["a"]["status"] == "ok" and rows["a"]["uri"].startswith(f"{out}/videos/")
    fs = fsspec.filesystem("s3")
    assert fs.cat_file(rows["a"]["uri"]) == Faults.video
    assert fs.exists(f"{out}/fetched.parquet") and summary["ok"] == 1 and summary["rejected"] == 1
    assert len(fs.find(f"{out}/videos")) == 1  # the rejected row left nothing behind


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (cryptography, which moto brings into [dev])."""
    import datetime as dt
    import ipaddress

    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def test_tls_is_verified_unless_told_not_to(tmp_path: Path, server: str) -> None:
    import ssl

    cert, key = _self_signed(tmp_path)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Faults)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = {"a": f"https://127.0.0.1:{httpd.server_address[1]}/ok/a.mp4"}
    try:
        rows, _ = fetch(tmp_path, url, ignore_opt_outs=True)
        assert rows["a"]["status"] == "rejected" and rows["a"]["error"].startswith("TLS: certificate not valid")
        assert rows["a"]["retryable"] is False
        rows, _ = fetch(tmp_path, url, "out2", ignore_opt_outs=True, verify_tls=False)
        assert rows["a"]["status"] == "ok"
    finally:
        httpd.shutdown()


def test_robots_txt_unreachable_means_disallowed_for_now(tmp_path: Path, server: str) -> None:
    """RFC 9309: a 5xx robots.txt means "assume complete disallow"; the rows may be retried later."""
    Faults.robots_status = 503
    try:
        rows, _ = fetch(tmp_path, {"a": f"{server}/ok/a.mp4", "b": f"{server}/ok/b.mp4"})
    finally:
        Faults.robots_status = 200
    for r in rows.values():
        assert r["status"] == "rejected" and r["retryable"] is True
        assert r["error"].startswith("robots.txt unreachable (http 503)")
    assert Faults.hits["/robots.txt"] == 1 and Faults.hits["/ok/a.mp4"] == 0  # asked once, nothing fetched
    assert Faults.agents[0].startswith("weaksup/")  # robots.txt is asked for under weaksup's name too
    rows, _ = fetch(tmp_path, {"a": f"{server}/ok/a.mp4", "b": f"{server}/ok/b.mp4"}, retry_rejected=True)
    assert all(r["status"] == "ok" for r in rows.values())


# ---- Parquet inputs in blocks: nothing per row on the driver -------------------------------


def _comparable(table: pa.Table, out: Path) -> list[dict]:
    """Rows without fetched_at, an ok row's file relative to its output folder."""
    rows = table.drop_columns(["fetched_at"]).to_pylist()
    for r in rows:
        r["uri"] = r["uri"] and str(Path(r["uri"]).relative_to(out))
    return rows


def test_a_parquet_input_in_blocks_equals_the_in_memory_path(tmp_path: Path, server: str, monkeypatch) -> None:
    """Duplicates across row groups (also of a row whose first had no URL), empty URLs and the
    input's other columns come out the same read by the workers block by block as read whole."""
    rows = [  # (video_id, url, licence): row groups of 3, blocks of 2
        ("a", f"{server}/ok/a.mp4", "cc-by"),
        ("e", "", "cc0"),  # no url: does not make row 4 a duplicate
        ("b", f"{server}/missing.mp4", "cc-by"),
        ("a", f"{server}/ok/a2.mp4", "cc0"),  # duplicate of row 0, in the next row group
        ("e", f"{server}/ok/e.mp4", None),  # e's first row with a URL
        ("c", None, "cc-by"),
        ("e", f"{server}/ok/e2.mp4", "cc0"),  # duplicate of row 4
        ("a", None, "cc0"),  # duplicate before empty
        ("d", f"{server}/ok/d.mp4", "cc-by"),
        ("b", f"{server}/ok/b.mp4", "cc0"),  # duplicate of a rejected first row
    ]
    ids, urls, licences = (list(c) for c in zip(*rows))
    parquet = tmp_path / "videos.parquet"
    table = pa.table({"video_id": ids, "url": urls, "licence": licences, "n": list(range(len(rows)))})
    pq.write_table(table, parquet, row_group_size=3)
    assert pq.ParquetFile(parquet).metadata.num_row_groups == 4
    csv = tmp_path / "videos.csv"
    csv.write_text(
        "video_id,url,licence,n\n" + "".join(f"{v},{u or ''},{lic or ''},{n}\n" for n, (v, u, lic) in enumerate(rows))
    )
    import weaksup.fetch.fetch as fetch_module

    given = []  # what the driver hands the bulk engine: a TableInput (workers read rows), or a list
    real = fetch_module.run_bulk
    monkeypatch.setattr(fetch_module, "run_bulk", lambda items, *a, **k: given.append(items) or real(items, *a, **k))
    common = dict(allow_private_hosts=True, progress=False, max_attempts=1, chunk_size=2)
    blocks, s_blocks = fetch_videos(FetchConfig(videos=parquet, out=tmp_path / "blocks", workers=2, **common))
    memory, s_memory = fetch_videos(FetchConfig(videos=csv, out=tmp_path / "memory", **common))
    assert isinstance(given[0], TableInput) and isinstance(given[1], list)
    blocks, memory = blocks.read(), memory.read()
    assert blocks.column_names == memory.column_names == [*load_schema("fetched").names, "licence", "n"]
    assert blocks.schema.field("n").type == memory.schema.field("n").type == pa.int64()
    assert _comparable(blocks, tmp_path / "blocks") == _comparable(memory, tmp_path / "memory")
    dup = "duplicate video_id: row {} has the same id"
    expect = [
        ("ok", ""),
        ("rejected", "no url: the URL column is empty"),
        ("rejected", "http 404"),
        ("rejected", dup.format(0)),
        ("ok", ""),
        ("rejected", "no url: the URL column is empty"),
        ("rejected", dup.format(4)),
        ("rejected", dup.format(0)),
        ("ok", ""),
        ("rejected", dup.format(2)),
    ]
    got = [(r["status"], r["error"] or "") for r in blocks.select(["status", "error"]).to_pylist()]
    assert [s for s, _ in got] == [s for s, _ in expect]
    assert all(error.startswith(start) for (_, error), (_, start) in zip(got, expect)), got
    assert blocks.column("licence").to_pylist() == licences and blocks.column("n").to_pylist() == list(range(10))
    assert blocks.column("url").to_pylist() == [u or "" for u in urls]
    for key in ("rows", "ok", "rejected", "retryable", "reasons", "bytes", "reused_from_earlier_run"):
        assert s_blocks[key] == s_memory[key], key
    assert_no_partial_files(tmp_path / "blocks", {r["video_id"]: r for r in blocks.to_pylist() if r["status"] == "ok"})


def test_a_rerun_in_blocks_takes_over_the_earlier_rows_at_their_row_numbers(
    tmp_path: Path, server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The workers read the earlier table's rows for their own block (its row groups laid out
    by another chunk size): an unchanged input is not fetched again; a changed URL and an
    appended row are, the rest taken over."""
    urls = [f"{server}/ok/{i}.mp4" for i in range(5)] + [f"{server}/missing.mp4", f"{server}/ok/0.mp4"]
    ids = [f"v{i}" for i in range(6)] + ["v0"]  # the last row repeats v0
    path = tmp_path / "videos.parquet"
    # 'uri' holding http(s) URLs is the URL column: in blocks that is checked on every row
    pq.write_table(pa.table({"video_id": ids, "uri": urls, "k": list(range(7))}), path, row_group_size=2)
    settings = dict(videos=path, out=tmp_path / "out", allow_private_hosts=True, progress=False, max_attempts=1)
    from weaksup import bulk

    monkeypatch.setattr(bulk, "ROW_GROUP_ROWS", 2)  # the earlier table in several row groups
    first, s1 = fetch_videos(FetchConfig(chunk_size=2, **settings))
    first = first.read()
    assert s1["reused_from_earlier_run"] == 0 and s1["ok"] == 5
    assert pq.ParquetFile(tmp_path / "out" / "fetched.parquet").metadata.num_row_groups > 1
    before = dict(Faults.hits)
    again, s2 = fetch_videos(FetchConfig(chunk_size=3, **settings))
    again = again.read()
    assert Faults.hits == before  # nothing asked again, not even robots.txt
    assert s2["reused_from_earlier_run"] == 6  # all but the duplicate (which is rejected anew)
    assert again.drop_columns(["fetched_at"]).equals(first.drop_columns(["fetched_at"]))
    assert again.column("fetched_at").to_pylist()[:6] == first.column("fetched_at").to_pylist()[:6]
    assert again.column("k").to_pylist() == list(range(7))

    urls[3] = f"{server}/ok/3-moved.mp4"
    pq.write_table(
        pa.table({"video_id": [*ids, "v7"], "uri": [*urls, f"{server}/ok/7.mp4"], "k": list(range(8))}),
        path,
        row_group_size=3,
    )
    third, s3 = fetch_videos(FetchConfig(chunk_size=2, **settings))
    rows = third.read().to_pylist()
    assert Faults.hits["/ok/3-moved.mp4"] == 1 and Faults.hits["/ok/7.mp4"] == 1
    files = {k: v for k, v in Faults.hits.items() if k != "/robots.txt"}
    assert sum(files.values()) == sum(before.values()) - 1 + 2  # only the changed and the new row
    assert s3["reused_from_earlier_run"] == 5 and s3["rows"] == 8 and s3["ok"] == 6
    assert [r["status"] for r in rows] == ["ok"] * 5 + ["rejected"] * 2 + ["ok"]
    assert rows[6]["error"] == "duplicate video_id: row 0 has the same id" and rows[7]["k"] == 7


def test_a_parquet_input_is_checked_on_every_row_before_any_fetch(tmp_path: Path) -> None:
    """The URL-column choice and the id check stream the whole table (no sample): a bad row in
    the last row group is refused before anything is fetched or created."""
    path = tmp_path / "videos.parquet"
    uris = [f"http://example.com/{i}.mp4" for i in range(5)] + ["/local/file.mp4"]
    pq.write_table(pa.table({"video_id": [str(i) for i in range(6)], "uri": uris}), path, row_group_size=2)
    with pytest.raises(InputError, match="no URL column 'url'"):
        fetch_videos(FetchConfig(videos=path, out=tmp_path / "out", progress=False))
    pq.write_table(
        pa.table({"video_id": ["a", "b", None, "d", None], "url": ["http://x/a"] * 5}), path, row_group_size=2
    )
    with pytest.raises(InputError, match="column 'video_id' has 2 empty value"):
        fetch_videos(FetchConfig(videos=path, out=tmp_path / "out", progress=False))
    assert not (tmp_path / "out").exists()
