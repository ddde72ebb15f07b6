"""A local folder served over HTTP, for trying fetch without the internet: the quickstart's
``--from-urls``, README's example, the tests and the benchmark."""

from __future__ import annotations

import functools
import http.server
import os
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator
from urllib.parse import quote

import pyarrow as pa

from weaksup.errors import InputError


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real media servers do

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def serve_folder(root: Path) -> Iterator[str]:
    """Serve ``root`` on 127.0.0.1 (a free port) while the block runs; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, name="weaksup-serve", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def urls_for(videos: pa.Table, root: Path, base: str) -> pa.Table:
    """``videos`` with its local ``uri`` column replaced by a ``url`` under ``base`` (``root`` served there)."""
    root = root.resolve()
    urls = []
    for uri in videos.column("uri").to_pylist():
        path = Path(uri).resolve()
        if root not in path.parents:
            raise InputError(f"{uri}: not under the served folder {root}")
        urls.append(f"{base}/{quote(os.path.relpath(path, root).replace(os.sep, '/'))}")
    return videos.drop_columns(["uri"]).append_column("url", pa.array(urls, pa.string()))
