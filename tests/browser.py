"""Headless Chromium (Debian's `chromium`) for layout checks and screenshots."""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]

needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (.ci/run installs it)"
)

# Headless Chromium will not make a window narrower than 500 px, so the page is laid out in an
# iframe of the width under test, and a script in the (test-only) wrapper page measures it.
_WRAPPER = """<!doctype html><html><body style="margin:0">
<iframe id="f" src="{src}" style="border:0;width:{width}px;height:{height}px"></iframe>
<script>
document.getElementById('f').addEventListener('load', () => {{
  const d = document.getElementById('f').contentDocument.documentElement;
  document.body.setAttribute('data-probe', d.scrollWidth + 'x' + d.clientWidth);
}});
</script></body></html>"""


def _run(args: list[str]) -> str:
    with tempfile.TemporaryDirectory() as profile:
        result = subprocess.run(
            [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
    return result.stdout


def _wrapper(page: Path, width: int, height: int) -> Path:
    wrapper = page.with_name(f".wrapper-{width}-{page.name}")
    wrapper.write_text(_WRAPPER.format(src=page.name, width=width, height=height), encoding="utf-8")
    return wrapper


def scroll_width(page: Path, width: int) -> tuple[int, int]:
    """(scrollWidth, clientWidth) of a page laid out `width` CSS pixels wide."""
    wrapper = _wrapper(page, width, 900)
    try:
        dom = _run(
            [
                "--allow-file-access-from-files",
                "--window-size=800,900",
                "--virtual-time-budget=3000",
                "--dump-dom",
                wrapper.as_uri(),
            ]
        )
    finally:
        wrapper.unlink()
    match = re.search(r'data-probe="(\d+)x(\d+)"', dom)
    assert match, "the probe did not run"
    return int(match[1]), int(match[2])


def screenshot(page: Path, out: Path, width: int, height: int = 2400) -> Path:
    """A PNG of a page laid out `width` CSS pixels wide (the top `height` pixels)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    wrapper = _wrapper(page, width, height)
    try:
        _run(
            [
                "--allow-file-access-from-files",
                f"--window-size={max(width, 500)},{height}",
                f"--screenshot={out}",
                "--virtual-time-budget=3000",
                wrapper.as_uri(),
            ]
        )
    finally:
        wrapper.unlink()
    return out


class Browser:
    """Headless Chromium driven over the DevTools protocol (CDP) on a pipe (Chromium's
    --remote-debugging-pipe: commands on fd 3, replies on fd 4, NUL-terminated JSON), so a
    test can load pages, fill in and submit forms, measure and take screenshots of what a
    reader sees. One page (tab) per Browser."""

    def __init__(self, width: int = 1024, height: int = 900, flags: tuple[str, ...] = ()):
        import json
        import os

        self._json = json
        self._profile = tempfile.TemporaryDirectory()
        import fcntl

        to_chromium, self._write = os.pipe()
        self._read, from_chromium = os.pipe()

        def on_fds_3_and_4() -> None:  # in the child: Chromium reads fd 3 and writes fd 4
            high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_chromium, from_chromium)]
            os.dup2(high[0], 3)
            os.dup2(high[1], 4)

        self.process = subprocess.Popen(
            [
                CHROMIUM,
                *FLAGS,
                "--remote-debugging-pipe",
                f"--user-data-dir={self._profile.name}",
                *flags,
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(3, 4, to_chromium, from_chromium),  # 3 and 4 kept once set
            preexec_fn=on_fds_3_and_4,
        )
        os.close(to_chromium)
        os.close(from_chromium)
        self._buffer = b""
        self._next = 0
        self.events: list[dict] = []
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.send("Target.attachToTarget", targetId=target, flatten=True)[
            "sessionId"
        ]
        self.call("Page.enable")
        self.call("Runtime.enable")
        self.resize(width, height)

    # -- the protocol ------------------------------------------------------------------------

    def _message(self) -> dict:
        import os
        import select

        while b"\0" not in self._buffer:
            ready, _, _ = select.select([self._read], [], [], 60)
            if not ready:
                raise TimeoutError("Chromium did not answer within 60 s")
            chunk = os.read(self._read, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return self._json.loads(raw)

    def send(self, method: str, session: str | None = None, **params: object) -> dict:
        import os

        self._next += 1
        ident = self._next
        message = {"id": ident, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._write, self._json.dumps(message).encode() + b"\0")
        while True:
            reply = self._message()
            if reply.get("id") == ident:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def call(self, method: str, **params: object) -> dict:
        """A command to the page."""
        return self.send(method, self.session, **params)

    def wait_for(self, event: str, timeout: float = 30) -> dict:
        """The next event of this name (events seen before are looked at first)."""
        import time

        deadline = time.monotonic() + timeout
        while True:
            for i, seen in enumerate(self.events):
                if seen.get("method") == event:
                    del self.events[: i + 1]
                    return seen.get("params", {})
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {event} within {timeout} s")
            self.events.append(self._message())

    # -- what tests do -----------------------------------------------------------------------

    def resize(self, width: int, height: int = 900) -> None:
        self.call(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=width < 600,
        )

    def open(self, url: str) -> None:
        """Load a page and wait until it has loaded."""
        self.events.clear()
        self.call("Page.navigate", url=url)
        self.wait_for("Page.loadEventFired")

    def js(self, expression: str) -> object:
        """The value of a script run in the page."""
        found = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in found:
            raise RuntimeError(f"script failed: {found['exceptionDetails']}")
        return found["result"].get("value")

    def submit(self, script: str) -> None:
        """Run a script that submits a form or follows a link, and wait for the next page."""
        self.events.clear()
        self.js(script)
        self.wait_for("Page.loadEventFired")

    def screenshot(self, out: Path) -> Path:
        import base64

        out.parent.mkdir(parents=True, exist_ok=True)
        height = int(self.js("document.documentElement.scrollHeight") or 900)
        data = self.call(
            "Page.captureScreenshot",
            format="png",
            captureBeyondViewport=True,
            clip={"x": 0, "y": 0, "width": self.width(), "height": min(height, 4000), "scale": 1},
        )["data"]
        out.write_bytes(base64.b64decode(data))
        return out

    def width(self) -> int:
        return int(self.js("window.innerWidth") or 0)

    def close(self) -> None:
        import os

        with contextlib.suppress(Exception):
            self.send("Browser.close")
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        for fd in (self._read, self._write):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._profile.cleanup()

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
