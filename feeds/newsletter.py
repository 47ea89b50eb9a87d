"""The email newsletter for every digest and language: MJML-compiled HTML, plain text, and .eml.

The only module that imports mjml (mjml-python, the MRML bindings).
"""

from __future__ import annotations

import functools
import hashlib
import re
from email.utils import format_datetime
from xml.parsers import expat

import jinja2
import mjml

from . import mime
from .config import SiteSettings
from .errors import Problem, TemplateError
from .i18n import TEXT, format_digest_date
from .model import Digest, Lang, clean_text
from .templating import render
from .urls import Urls, digest_page_path, feed_path, newsletter_path, unsubscribe_url
from .views import note_views

MJML_TEMPLATE = "newsletter.mjml"
TEXT_TEMPLATE = "newsletter.txt"
GMAIL_CLIP_BYTES = 102 * 1024
TO_PLACEHOLDER = "undisclosed-recipients:;"

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
_MJ_TAG = re.compile(r"<\s*(mj-[\w-]+|mjml)\b")


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
    views = note_views(settings)
    taken = frozenset(note.slug for note in digest.notes)  # as its page: the same views
    items = [views(digest.id, note, lang, taken) for note in digest.notes]
    site_title = clean_text(settings.title[lang])
    date_text = format_digest_date(digest.date, digest.part, lang)
    titles = ", ".join(i.note.title for i in items)
    unsubscribe = unsubscribe_url(settings.subscriptions_url, settings.unsubscribe_url) or (
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
            "feed": urls.of(feed_path(lang, None, "atom")),
            "unsubscribe": unsubscribe,
        },
        "unsubscribe_label": text["preferences" if settings.subscriptions_url else "unsubscribe"],
    }


def subject(digest: Digest, lang: Lang, settings: SiteSettings) -> str:
    date_text = format_digest_date(digest.date, digest.part, lang)
    return mime.header_text(
        TEXT[lang]["subject"].format(title=settings.title[lang], date=date_text)
    )


def message(digest: Digest, lang: Lang, settings: SiteSettings, html: str, text: str) -> bytes:
    """The RFC 5322 message: multipart/alternative, text then HTML, both base64 UTF-8, with a
    placeholder To and token that the sender fills in for each recipient."""
    html_bytes, text_bytes = html.encode(), text.encode()
    seed = hashlib.sha256(f"{digest.id}/{lang}".encode() + html_bytes + text_bytes)
    boundary = f"=_feeds_{seed.hexdigest()[:32]}"
    before, after = _fixed_headers(
        lang,
        settings.author_name,
        settings.author_email,
        settings.title[lang],
        settings.domain,
        settings.unsubscribe_mailto,
        unsubscribe_url(settings.subscriptions_url, settings.unsubscribe_url),
    )
    return b"".join(
        [
            mime.content_type(boundary),
            before,
            mime.header("Subject", subject(digest, lang, settings)),
            mime.header("Date", format_datetime(digest.published(settings.tz))),
            mime.header("Message-ID", f"<newsletter.{digest.id}.{lang}@{settings.domain}>"),
            after,
            mime.alternative_body(boundary, text_bytes, html_bytes),
        ]
    )


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
    before = (
        b"MIME-Version: 1.0\r\n"
        + mime.address_header("From", author_name, author_email)
        + mime.header("To", TO_PLACEHOLDER)
    )
    after = mime.list_id_header(list_title, f"newsletter.{lang}.{domain}")
    targets = [f"mailto:{unsubscribe_mailto}?subject=unsubscribe"] if unsubscribe_mailto else []
    if unsubscribe_https:
        targets.append(unsubscribe_https)
    if targets:
        after += mime.list_header("List-Unsubscribe", targets)
    if unsubscribe_https and unsubscribe_https.startswith("https://"):
        after += mime.header("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")
    return before, after + mime.header("Content-Language", lang)


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
