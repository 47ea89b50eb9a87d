"""`feeds serve`: a local preview of dist/ that rebuilds when digests or templates change."""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections.abc import Callable, Iterable
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol

from .config import Settings
from .errors import FeedsError, Problem
from .templating import default_templates_dir
from .urls import FEED_FILES, FEED_MEDIA_TYPES

CONTENT_TYPES = {
    ".xml": "application/xml",
    ".json": "application/json",
    ".opml": "text/x-opml",
    ".eml": "message/rfc822",
    ".txt": "text/plain; charset=utf-8",
    ".html": "text/html; charset=utf-8",
}


class DistHandler(SimpleHTTPRequestHandler):
    """Static files with the feeds' own media types, and dist/404.html for what is missing."""

    extensions_map = {  # noqa: RUF012 (as the base class declares it)
        **SimpleHTTPRequestHandler.extensions_map,
        **CONTENT_TYPES,
    }

    def guess_type(self, path: str | os.PathLike[str]) -> str:
        name = os.path.basename(os.fspath(path))  # atom.xml, or an archive's 3.atom.xml
        for fmt, file in FEED_FILES.items():
            if name == file or name.endswith(f".{file}"):
                return FEED_MEDIA_TYPES[fmt]
        return super().guess_type(path)

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

    def send_head(self) -> Any:
        try:
            return super().send_head()
        except ValueError:  # a path no file can have (/%00): not found, not a traceback
            self.send_error(404)
            return None

    def list_directory(self, path: str | os.PathLike[str]) -> Any:
        self.send_error(404)  # a folder without index.html is not a page of the site
        return None

    def log_message(self, format: str, *args: object) -> None:
        pass


def snapshot(folders: list[Path]) -> dict[str, float]:
    """Modification times of every file under the folders: what the watcher compares."""
    times = {}
    for folder in folders:
        if folder.is_dir():
            for path in folder.rglob("*"):
                with contextlib.suppress(OSError):  # gone meanwhile: the next look sees it
                    if path.is_file() and not path.name.startswith("."):
                        times[str(path)] = path.stat().st_mtime
    return times


def watch(
    folders: list[Path],
    rebuild: Callable[[], None],
    stop: threading.Event,
    crashed: Callable[[Exception], None],
    interval: float = 0.5,
) -> None:
    """Call rebuild whenever a file under the folders is added, changed or removed. A rebuild
    that fails in a way nobody foresaw is told to `crashed`, and the watching goes on."""
    seen = snapshot(folders)
    while not stop.wait(interval):
        now = snapshot(folders)
        if now != seen:
            seen = now
            try:
                rebuild()
            except Exception as exc:  # the watcher must outlive any one rebuild
                crashed(exc)


def make_server(out: Path, port: int) -> ThreadingHTTPServer:
    """The server on 127.0.0.1:port, bound (raises FeedsError when it cannot be)."""
    handler = functools.partial(DistHandler, directory=str(out))
    try:
        return ThreadingHTTPServer(("127.0.0.1", port), handler)
    except OSError as exc:
        raise FeedsError(f"cannot serve on 127.0.0.1:{port}: {exc.strerror or exc}") from None


def serve(
    server: ThreadingHTTPServer,
    rebuild: Callable[[], None],
    watched: list[Path] | None,
    crashed: Callable[[Exception], None],
) -> None:
    """Serve until interrupted, rebuilding on changes under `watched` (None: no watching)."""
    stop = threading.Event()
    if watched:
        watcher = threading.Thread(
            target=watch, args=(watched, rebuild, stop, crashed), daemon=True
        )
        watcher.start()
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        server.server_close()


class Console(Protocol):
    """Where a preview tells its user what happens."""

    def report(self, problems: Iterable[Problem], as_errors: bool) -> None: ...
    def say(self, line: str, result: bool = False) -> None: ...


def preview(
    src: Path, out: Path, settings: Settings, port: int, watching: bool, console: Console
) -> None:
    """`feeds serve`: bind the port (said before anything is built, when it cannot be), build
    with http://127.0.0.1:PORT/ as the base URL, serve OUT, and rebuild when a digest or a
    template changes. A failing rebuild keeps the last good site served."""
    from .build import build

    server = make_server(out, port)

    def rebuild() -> None:
        try:
            result = build(src, out, settings)
        except FeedsError as exc:
            console.report(exc.problems, as_errors=False)
            console.say("Rebuild failed; still serving the last good site.")
            return
        console.say(
            f"Rebuilt: {len(result.written)} written, {len(result.removed)} removed "
            f"in {result.elapsed:.2f}s",
            result=True,
        )

    def crashed(exc: Exception) -> None:
        console.say(
            f"Error: the rebuild failed unexpectedly ({type(exc).__name__}: {exc}); this is a "
            "bug in feeds, please report it. Still serving the last good site, and watching."
        )

    try:
        result = build(src, out, settings)
    except BaseException:
        server.server_close()
        raise
    console.report(result.warnings, as_errors=False)
    base_url = settings.site.base_url
    console.say(
        f"Built {out} ({len(result.written)} written). Serving {base_url} (Ctrl+C to stop)",
        result=True,
    )
    templates = settings.build.templates_dir
    watched = [src, Path(templates) if templates else default_templates_dir()]
    serve(server, rebuild, watched if watching else None, crashed)
