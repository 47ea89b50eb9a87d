"""`feeds serve`: a local preview of dist/ that rebuilds when digests or templates change."""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

CONTENT_TYPES = {
    ".xml": "application/xml",
    ".json": "application/json",
    ".opml": "text/x-opml",
    ".eml": "message/rfc822",
    ".txt": "text/plain; charset=utf-8",
    ".html": "text/html; charset=utf-8",
}
FEED_TYPES = {
    "atom.xml": "application/atom+xml",
    "rss.xml": "application/rss+xml",
    "feed.json": "application/feed+json",
}


class DistHandler(SimpleHTTPRequestHandler):
    """Static files with the feeds' own media types, and dist/404.html for what is missing."""

    extensions_map = {  # noqa: RUF012 (as the base class declares it)
        **SimpleHTTPRequestHandler.extensions_map,
        **CONTENT_TYPES,
    }

    def guess_type(self, path: str | os.PathLike[str]) -> str:
        name = os.path.basename(os.fspath(path))
        return FEED_TYPES.get(name) or super().guess_type(path)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        page = Path(self.directory) / "404.html"
        if code == 404 and page.is_file():
            body = page.read_bytes()
            self.send_response(404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
            return
        super().send_error(code, message, explain)

    def log_message(self, format: str, *args: object) -> None:
        pass


def snapshot(folders: list[Path]) -> dict[str, float]:
    """Modification times of every file under the folders: what the watcher compares."""
    times = {}
    for folder in folders:
        if folder.is_dir():
            for path in folder.rglob("*"):
                if path.is_file() and not path.name.startswith("."):
                    times[str(path)] = path.stat().st_mtime
    return times


def watch(
    folders: list[Path], rebuild: Callable[[], None], stop: threading.Event, interval: float = 0.5
) -> None:
    """Call rebuild whenever a file under the folders is added, changed or removed."""
    seen = snapshot(folders)
    while not stop.wait(interval):
        now = snapshot(folders)
        if now != seen:
            seen = now
            rebuild()


def make_server(out: Path, port: int) -> ThreadingHTTPServer:
    handler = functools.partial(DistHandler, directory=str(out))
    return ThreadingHTTPServer(("127.0.0.1", port), handler)


def serve(out: Path, port: int, rebuild: Callable[[], None], watched: list[Path] | None) -> None:
    """Serve `out` until interrupted, rebuilding on changes under `watched` (None: no watching)."""
    server = make_server(out, port)
    stop = threading.Event()
    if watched:
        threading.Thread(target=watch, args=(watched, rebuild, stop), daemon=True).start()
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        server.server_close()
