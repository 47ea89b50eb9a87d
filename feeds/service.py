"""What the subscription service does apart from HTTP (feeds.web): its settings, tokens,
templates and mailer, a database connection per thread, and its pages rendered."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from .config import Settings
from .confirmations import ConfirmationMailer
from .errors import FeedsError
from .model import Lang, clean_text
from .service_text import SERVICE_TEXT
from .store import connect
from .subscribers import Limits, Subscribers
from .templating import make_environment, render
from .tokens import Tokens
from .urls import service_url

MAX_FORM_BYTES = 8 * 1024
"""A sign-up or preferences form is a few hundred bytes; anything larger is refused (413)."""

ONE_CLICK = "List-Unsubscribe=One-Click"
"""The body of an RFC 8058 one-click unsubscribe."""

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",  # tokens are in the URLs
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


class Service:
    """What every request of one app shares."""

    def __init__(self, settings: Settings, db: Path):
        secret = settings.mail.secret_key
        if secret is None:
            raise FeedsError(
                "the subscription service signs its links: set FEEDS_SECRET_KEY "
                "(the same secret feeds send uses)"
            )
        self.settings = settings
        self.db = db
        self.tokens = Tokens(secret.reveal(), settings.service.confirm_days * 86400)
        self.limits = Limits(settings.service.mails_per_address, settings.service.mails_per_ip)
        self.env = make_environment(settings.build.templates_dir)
        self.mailer = ConfirmationMailer(settings, self.env)
        self._local = threading.local()
        connect(db).close()  # made now: a database that cannot be used is an error at start

    def subscribers(self) -> Subscribers:
        """This thread's connection to the database."""
        found: Subscribers | None = getattr(self._local, "subscribers", None)
        if found is None:
            found = self._local.subscribers = Subscribers(connect(self.db))
        return found

    def render(self, lang: Lang, title: str, base: str, other_url: str | None, **page: Any) -> str:
        """A page in `lang`, from service/{template}.html (default: message); `other_url`
        followed by a language code shows the page in that language."""
        other: Lang = "en" if lang == "ko" else "ko"
        site = self.settings.site
        context = {
            "paragraphs": [],  # what a template may leave out, so that StrictUndefined holds
            "link": None,
            "notice": "",
            "error": "",
            "lang": lang,
            "title": title,
            "site_title": clean_text(site.title[lang]),
            "site": f"{site.base_url}{lang}/",
            "style": service_url(base, "style.css"),
            "other": None
            if other_url is None
            else {
                "lang": other,
                "name": SERVICE_TEXT[other]["language_name"],
                "url": other_url + other,
            },
            **page,
        }
        template = f"service/{page.get('template', 'message')}.html"
        signup = page.get("signup")
        return render(self.env, template, page=context, text=SERVICE_TEXT[lang], signup=signup)

    def names(self, lang: Lang, subscriber_lang: str) -> str:
        """How `lang` names a subscriber's languages (ko, en, both)."""
        return SERVICE_TEXT[lang][f"lang_{subscriber_lang}"]


def parse_form(raw: bytes) -> dict[str, str] | None:
    """A url-encoded form body, strictly: None unless it is ASCII whose escapes are UTF-8."""
    try:
        return dict(parse_qsl(raw.decode("ascii"), encoding="utf-8", errors="strict"))
    except (UnicodeDecodeError, ValueError):
        return None
