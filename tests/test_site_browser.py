"""The built site as a reader's browser shows it, served by `feeds serve` on 127.0.0.1: search
(Pagefind) in both languages, and the landing, a digest and a tag page at a phone's and a
desktop's width: no horizontal scroll, no tag broken inside its name. Screenshots go to
tests/artifacts/."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from .browser import Browser, needs_chromium
from .conftest import ARTIFACTS, SEEDS
from .test_serve import free_port, get, wait_for

pytestmark = [pytest.mark.slow, needs_chromium]


def _serve(root, extra_env: dict[str, str]):
    """`feeds serve` of the seeds in root, as a user runs it; yields its base URL."""
    shutil.copytree(SEEDS, root / "seeds")
    port = free_port()
    log = (root / "serve.log").open("w")
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "FEEDS_CACHE_DIR": str(root / "cache"),
        **extra_env,
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "feeds",
            "serve",
            str(root / "seeds"),
            "--out",
            str(root / "dist"),
            "--port",
            str(port),
            "--no-watch",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    base = f"http://127.0.0.1:{port}/"
    try:
        wait_for(lambda: get(base)[0] == 200, timeout=60)
        yield base
    finally:
        process.terminate()
        process.wait(10)
        log.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory):
    yield from _serve(tmp_path_factory.mktemp("served"), {})


@pytest.fixture(scope="module")
def sharded_site(tmp_path_factory: pytest.TempPathFactory):
    """The seeds with a search shard per digest: three indexes the search page merges."""
    yield from _serve(tmp_path_factory.mktemp("sharded"), {"FEEDS_SEARCH_SHARD_SIZE": "1"})


@pytest.fixture(scope="module")
def browser():
    with Browser() as b:
        yield b


def _results(browser: Browser, timeout: float = 20) -> list[dict[str, str]]:
    """The search results once Pagefind has shown them: each result's and sub-result's link."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = browser.js(
            "JSON.stringify([...document.querySelectorAll('.pagefind-ui__result-link')]"
            ".map(a => ({href: a.href, text: a.textContent.trim()})))"
        )
        results = json.loads(str(found))
        if results:
            return results
        time.sleep(0.2)
    return []


@pytest.mark.parametrize(
    ("lang", "word", "anchor"),
    [
        (
            "ko",
            "마르코프",
            "generator-matching-generative-modeling-with-arbitrary-markov-processes",
        ),
        ("en", "ThunderKittens", "thunderkittens-simple-fast-and-adorable-ai-kernels"),
        ("en", "Jelassi", "mixture-of-parrots-experts-improve-memorization-more-than-reasoning"),
    ],
)
def test_search_finds_the_note_and_links_to_its_anchor(site, browser, lang, word, anchor):
    browser.resize(1280)
    browser.open(f"{site}{lang}/search/?q={word}")
    results = _results(browser)
    assert results, f"no results for {word!r} on the {lang} search page"
    hrefs = [r["href"] for r in results]
    target = f"{site}{lang}/2024-10-29/#{anchor}"
    assert target in hrefs, hrefs
    status, _, page = get(target.split("#")[0])
    assert status == 200 and f'id="{anchor}"'.encode() in page
    browser.screenshot(ARTIFACTS / f"search-{lang}-{word}.png")


def test_search_in_one_language_finds_only_that_language(site, browser):
    browser.open(f"{site}ko/search/?q=ThunderKittens")
    hrefs = [r["href"] for r in _results(browser)]
    assert hrefs and all(h.startswith(f"{site}ko/") for h in hrefs), hrefs


@pytest.mark.parametrize(
    ("word", "digest"),
    [("ThunderKittens", "2024-10-29"), ("Langford", "2024-11-04-1"), ("Rashtchian", "2024-11-07")],
)
def test_search_merges_every_shard(sharded_site, browser, word, digest):
    """The oldest digest's shard, the middle one's and the newest's, each found from the one
    search page."""
    status, _, search = get(f"{sharded_site}en/search/")
    assert status == 200 and b"/pagefind/3/" in search and b"/pagefind/1/" in search
    browser.open(f"{sharded_site}en/search/?q={word}")
    hrefs = [r["href"] for r in _results(browser)]
    assert any(h.startswith(f"{sharded_site}en/{digest}/") for h in hrefs), hrefs


PAGES = {
    "landing": "",
    "digest": "en/2024-10-29/",
    "digest-ko": "ko/2024-10-29/",
    "tag": "en/tags/diffusion/",
}


@pytest.mark.parametrize("width", [390, 1280])
@pytest.mark.parametrize("name", ["landing", "digest", "digest-ko", "tag"])
def test_pages_fit_the_width_and_never_break_a_tag(site, browser, name, width):
    browser.resize(width)
    browser.open(site + PAGES[name])
    scroll, client = browser.js(
        "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )  # type: ignore[misc]
    assert scroll <= client, f"{name} scrolls sideways at {width} px ({scroll} > {client})"
    broken = browser.js(
        "[...document.querySelectorAll('.tags a, .pagefind-ui__result-tag')]"
        ".filter(a => a.getClientRects().length !== 1).map(a => a.textContent)"
    )
    assert broken == [], f"tags split across lines at {width} px: {broken}"
    if name in ("digest", "digest-ko"):
        assert browser.js("document.querySelectorAll('.tags a').length") > 5
    browser.screenshot(ARTIFACTS / f"{name}-{width}.png")


def test_the_landing_page_is_one_page_for_both_languages(site, browser):
    browser.resize(1280)
    browser.open(site)
    headings = browser.js("[...document.querySelectorAll('main h2')].map(h => h.textContent)")
    assert isinstance(headings, list) and len(headings) == len(set(headings)), headings
    cards = browser.js(
        "[...document.querySelectorAll('.card')].map(c => [...c.querySelectorAll('.date a')]"
        ".map(a => a.getAttribute('hreflang')))"
    )
    assert cards and all(links == ["ko", "en"] for links in cards), cards  # type: ignore[union-attr]
    columns = browser.js(
        "new Set([...document.querySelectorAll('.card')].map(c => c.getBoundingClientRect().top))"
        ".size < document.querySelectorAll('.card').length"
    )
    assert columns, "the digests do not sit side by side on a desktop"


def test_dark_mode_keeps_the_page_dark(site, browser):
    browser.call(
        "Emulation.setEmulatedMedia", features=[{"name": "prefers-color-scheme", "value": "dark"}]
    )
    try:
        browser.resize(390)
        browser.open(site + PAGES["digest"])
        background = browser.js("getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(22, 24, 28)", background
        browser.screenshot(ARTIFACTS / "digest-390-dark.png")
    finally:
        browser.call("Emulation.setEmulatedMedia", features=[])
