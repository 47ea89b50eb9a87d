"""Headless Chromium (Debian's `chromium`) for layout checks and screenshots."""

from __future__ import annotations

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
