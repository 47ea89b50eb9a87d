"""The email newsletter for every digest and language: MJML-compiled HTML, plain text, and .eml.

The only module that imports mjml (mjml-python, the MRML bindings).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from email.header import Header
from email.policy import compat32
from email.utils import format_datetime, formataddr
from xml.parsers import expat

import jinja2
import mjml

from .config import SiteSettings
from .errors import Problem, TemplateError
from .i18n import TEXT, format_digest_date
from .model import Digest, Lang, clean_text
from .templating import render
from .urls import Urls, digest_page_path, lang_feed_path, newsletter_path
from .views import note_view

MJML_TEMPLATE = "newsletter.mjml"
TEXT_TEMPLATE = "newsletter.txt"
GMAIL_CLIP_BYTES = 102 * 1024
TO_PLACEHOLDER = "undisclosed-recipients:;"
TOKEN_PLACEHOLDER = "__RECIPIENT_TOKEN__"

# What MRML compiles; anything else named mj-* it passes through silently.
MJML_TAGS = frozenset(
    [
        "mjml",
        "mj-head",
        "mj-body",
        "mj-attributes",
        "mj-all",
        "mj-class",
        "mj-breakpoint",
        "mj-font",
        "mj-preview",
        "mj-style",
        "mj-title",
        "mj-raw",
        "mj-include",
        "mj-accordion",
        "mj-accordion-element",
        "mj-accordion-title",
        "mj-accordion-text",
        "mj-button",
        "mj-carousel",
        "mj-carousel-image",
        "mj-column",
        "mj-divider",
        "mj-group",
        "mj-hero",
        "mj-image",
        "mj-navbar",
        "mj-navbar-link",
        "mj-section",
        "mj-social",
        "mj-social-element",
        "mj-spacer",
        "mj-table",
        "mj-text",
        "mj-wrapper",
    ]
)
_POLICY = compat32.clone(linesep="\r\n")
_MJ_TAG = re.compile(r"<\s*(mj-[\w-]+|mjml)\b")


def _base64_lines(data: bytes) -> bytes:
    """base64.encodebytes with CRLF line ends: lines of 76 characters (57 bytes)."""
    if not data:
        return b""
    encoded = base64.b64encode(data)
    return b"\r\n".join([encoded[i : i + 76] for i in range(0, len(encoded), 76)]) + b"\r\n"


def unsubscribe_url(settings: SiteSettings, token: str = TOKEN_PLACEHOLDER) -> str | None:
    """The https unsubscribe link for one recipient (the placeholder until the sender fills it)."""
    if not settings.unsubscribe_url:
        return None
    joiner = "&" if "?" in settings.unsubscribe_url else "?"
    return f"{settings.unsubscribe_url}{joiner}token={token}"


def check_mjml_templates(env: jinja2.Environment) -> None:
    """Report every mj- tag MRML does not know, with the template file and line."""
    problems = []
    for name in env.list_templates(filter_func=lambda n: n.endswith(".mjml")):
        source, filename, _ = env.loader.get_source(env, name)  # type: ignore[union-attr]
        for number, line in enumerate(source.splitlines(), 1):
            for tag in _MJ_TAG.findall(line):
                if tag not in MJML_TAGS:
                    problems.append(
                        Problem(
                            f"unknown MJML tag <{tag}> (MRML would pass it through untouched)",
                            filename or name,
                            number,
                        )
                    )
    if problems:
        raise TemplateError.from_problems(problems)


def _compile(source: str, template: str, what: str) -> str:
    try:
        return mjml.mjml2html(source, fonts={}, disable_comments=True)
    except ValueError as exc:
        problem = f"MRML cannot compile the output for {what}: {exc}"
    # MRML rejects what is not well-formed but says little about where: let expat say it.
    parser = expat.ParserCreate()
    try:
        parser.Parse(source.replace("&nbsp;", "&#160;"), True)
    except expat.ExpatError as exc:
        problem = (
            f"invalid MJML in the output for {what}: {expat.ErrorString(exc.code)} "
            f"(line {exc.lineno} of the rendered MJML)"
        )
    raise TemplateError(problem, template)


def _context(digest: Digest, lang: Lang, settings: SiteSettings) -> dict[str, object]:
    urls = Urls(settings.base_url)
    text = TEXT[lang]
    items = [note_view(digest.id, note, lang, urls) for note in digest.notes]
    site_title = clean_text(settings.title[lang])
    date_text = format_digest_date(digest.date, digest.part, lang)
    titles = ", ".join(i.note.title for i in items)
    unsubscribe = unsubscribe_url(settings) or (
        f"mailto:{settings.unsubscribe_mailto}?subject=unsubscribe"
        if settings.unsubscribe_mailto
        else urls.of(digest_page_path(lang, digest.id))
    )
    return {
        "digest": digest,
        "lang": lang,
        "text": text,
        "items": items,
        "site_title": site_title,
        "date_text": date_text,
        "subject": subject(digest, lang, settings),
        "preheader": text["preheader"].format(titles=titles)[:240],
        "why": text["why"].format(title=site_title),
        "urls": {
            "digest": urls.of(digest_page_path(lang, digest.id)),
            "feed": urls.of(lang_feed_path(lang, "atom")),
            "unsubscribe": unsubscribe,
        },
    }


def subject(digest: Digest, lang: Lang, settings: SiteSettings) -> str:
    date_text = format_digest_date(digest.date, digest.part, lang)
    return header_text(TEXT[lang]["subject"].format(title=settings.title[lang], date=date_text))


def header_text(value: str) -> str:
    """Text safe for a header: no CR, LF or other control characters, single spaces."""
    return " ".join(clean_text(value.replace("\r", " ").replace("\n", " ")).split())


def _header(value: str) -> str | Header:
    """ASCII as is; anything else as RFC 2047 encoded words (compat32 folds a Header too,
    though its stubs say str)."""
    return value if value.isascii() else Header(value, "utf-8")


def message(digest: Digest, lang: Lang, settings: SiteSettings, html: str, text: str) -> bytes:
    """The RFC 5322 message: multipart/alternative, text then HTML, both base64 UTF-8.

    The email package folds and encodes every header. The message is laid out here, as its
    generator lays out a multipart (headers, blank line, each part after a boundary line):
    building and flattening a message object costs more per newsletter than the MJML, and
    all but four headers are the same for every digest of a language.
    """
    html_bytes, text_bytes = html.encode(), text.encode()
    seed = hashlib.sha256(f"{digest.id}/{lang}".encode() + html_bytes + text_bytes)
    boundary = f"=_feeds_{seed.hexdigest()[:32]}".encode()
    before, after = _fixed_headers(
        lang,
        header_text(settings.author_name),
        settings.author_email,
        header_text(settings.title[lang]),
        settings.domain,
        settings.unsubscribe_mailto,
        unsubscribe_url(settings),
    )
    fold = _POLICY.fold_binary
    return b"".join(
        [
            fold("Content-Type", f'multipart/alternative; boundary="{boundary.decode()}"'),
            before,
            fold("Subject", _header(subject(digest, lang, settings))),  # type: ignore[arg-type]
            fold("Date", format_datetime(digest.published(settings.tz))),
            fold("Message-ID", f"<newsletter.{digest.id}.{lang}@{settings.domain}>"),
            after,
            b"\r\n--" + boundary + b"\r\n",
            _PART_HEADERS["plain"],
            _base64_lines(text_bytes),
            b"\r\n--" + boundary + b"\r\n",
            _PART_HEADERS["html"],
            _base64_lines(html_bytes),
            b"\r\n--" + boundary + b"--\r\n",
        ]
    )


def _part_headers(subtype: str) -> bytes:
    fold = _POLICY.fold_binary
    return (
        fold("Content-Type", f'text/{subtype}; charset="utf-8"')
        + fold("Content-Transfer-Encoding", "base64")
        + b"\r\n"
    )


_PART_HEADERS = {subtype: _part_headers(subtype) for subtype in ("plain", "html")}


@functools.lru_cache(maxsize=16)
def _fixed_headers(
    lang: Lang,
    author_name: str,
    author_email: str,
    list_title: str,
    domain: str,
    unsubscribe_mailto: str | None,
    unsubscribe_https: str | None,
) -> tuple[bytes, bytes]:
    """The headers every newsletter of a language shares: those before Subject, those after
    Message-ID."""
    fold = _POLICY.fold_binary
    before = (
        fold("MIME-Version", "1.0")
        + fold("From", formataddr((author_name, author_email), charset="utf-8"))
        + fold("To", TO_PLACEHOLDER)
    )
    list_id = Header(list_title, "utf-8")
    list_id.append(f"<newsletter.{lang}.{domain}>", "us-ascii")
    after = fold("List-Id", list_id)  # type: ignore[arg-type]  # compat32 folds a Header too
    targets = []
    if unsubscribe_mailto:
        targets.append(f"<mailto:{unsubscribe_mailto}?subject=unsubscribe>")
    if unsubscribe_https:
        targets.append(f"<{unsubscribe_https}>")
    if targets:
        after += fold("List-Unsubscribe", ", ".join(targets))
    if unsubscribe_https and unsubscribe_https.startswith("https://"):
        after += fold("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")
    return before, after + fold("Content-Language", lang)


def render_newsletter(
    digest: Digest, lang: Lang, settings: SiteSettings, env: jinja2.Environment
) -> tuple[list[tuple[str, bytes]], list[Problem]]:
    """One digest's newsletter in one language: .html, .txt and .eml, and any warnings.

    Call check_mjml_templates once before: it reports tags MRML would pass through.
    """
    context = _context(digest, lang, settings)
    source = render(env, MJML_TEMPLATE, **context)
    html = _compile(source, MJML_TEMPLATE, f"{digest.id} ({lang})")
    text = render(env, TEXT_TEMPLATE, **context)
    html_bytes = html.encode()
    warnings = []
    if len(html_bytes) > GMAIL_CLIP_BYTES:
        warnings.append(
            Problem(
                f"the {lang} newsletter is {len(html_bytes) // 1024} KB of HTML: Gmail clips "
                f"messages over {GMAIL_CLIP_BYTES // 1024} KB",
                digest.source,
                severity="warning",
            )
        )
    outputs = [
        (newsletter_path(digest.id, lang, "html"), html_bytes),
        (newsletter_path(digest.id, lang, "txt"), text.encode()),
        (newsletter_path(digest.id, lang, "eml"), message(digest, lang, settings, html, text)),
    ]
    return outputs, warnings
