"""Settings, split by who uses them, from `[tool.feeds]`, FEEDS_* variables and CLI options.

- `SiteSettings`: what the outputs depend on. Only these enter render keys.
- `BuildSettings`: how a build runs (cache, workers, templates folder).
- `MailSettings`: how mail is sent (SMTP, the subscribers database, bounces, secrets).
- `ServiceSettings`: how the subscription service answers (confirmation expiry, limits).

Every key, its type and its check come from the dataclass fields below; secrets are read only
from the environment and never appear in a repr.
"""

from __future__ import annotations

import difflib
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import ConfigError, Problem
from .links import DEFAULT_PAPER_SEARCH
from .model import LANGS, Lang

DEFAULT_BASE_URL = "http://localhost:8000/"
_DEFAULT_TEXT: dict[str, dict[Lang, str]] = {
    "title": {"ko": "ML 논문 노트", "en": "ML Paper Notes"},
    "description": {
        "ko": "머신러닝 논문에 대한 짧은 노트",
        "en": "Short notes on machine-learning papers",
    },
}


class Secret:
    """A value that must never reach a log or a repr (a password, a signing key)."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


_URL = {"check": "url"}
_SECRET = {"secret": True}


@dataclass(frozen=True)
class SiteSettings:
    """What the outputs depend on: the only settings that enter render keys."""

    base_url: str = field(default=DEFAULT_BASE_URL, metadata=_URL)
    title: Mapping[Lang, str] = field(default_factory=lambda: dict(_DEFAULT_TEXT["title"]))
    description: Mapping[Lang, str] = field(
        default_factory=lambda: dict(_DEFAULT_TEXT["description"])
    )
    author_name: str = "feeds"
    author_email: str = "feeds@localhost"
    timezone: str = field(default="Asia/Seoul", metadata={"check": "timezone"})
    feed_limit: int = 50
    digest_feed_limit: int = 10  # digests in the feed with one item per digest
    tag_page_size: int = 200
    search_shard_size: int = 400  # digests in the largest search shards (feeds.search)
    # What the archive documents of tag feeds hold of each note: its title, summary, link,
    # tags and dates ("summary"), or all its text ("full"), as the subscription documents do.
    tag_archive_items: str = field(default="summary", metadata={"choices": ("summary", "full")})
    websub_hub: str | None = field(default=None, metadata=_URL)
    unsubscribe_url: str | None = field(default=None, metadata=_URL)
    unsubscribe_mailto: str | None = None
    subscribe_url: str | None = field(default=None, metadata=_URL)
    subscriptions_url: str | None = field(default=None, metadata=_URL)  # the service's base URL
    paper_search_url: str = field(default=DEFAULT_PAPER_SEARCH, metadata={"check": "search"})

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def domain(self) -> str:
        return urlsplit(self.base_url).hostname or "localhost"


@dataclass(frozen=True)
class BuildSettings:
    """How a build runs: none of it changes what it writes."""

    cache_dir: str = ".feeds-cache"
    workers: int = 0
    templates_dir: str | None = None
    keep_going: bool = False  # publish what parsed when some digests have errors (exit 1)
    frozen_state: bool = False  # refuse to build when .feeds-state.json would change (CI)


@dataclass(frozen=True)
class MailSettings:
    """How newsletters are sent."""

    smtp_host: str | None = None
    smtp_port: int | None = None
    smtp_user: str | None = None
    smtp_security: str = field(
        default="starttls", metadata={"choices": ("starttls", "tls", "none")}
    )
    smtp_timeout: int = 300  # seconds for each command (RFC 5321 4.5.3.2)
    smtp_data_timeout: int = 600  # seconds for the reply to the end of a message
    smtp_password: Secret | None = field(default=None, repr=False, metadata=_SECRET)
    secret_key: Secret | None = field(default=None, repr=False, metadata=_SECRET)  # signs tokens
    unsubscribed: str | None = None
    subscribers_db: str = "subscribers.sqlite"  # subscribers, consent, suppressions, ledger
    bounce_address: str | None = None  # VERP: bounces come back to local+token@domain
    soft_bounce_limit: int = 3  # soft bounces in a row before an address is suppressed
    imap_password: Secret | None = field(default=None, repr=False, metadata=_SECRET)


@dataclass(frozen=True)
class ServiceSettings:
    """How the subscription service answers."""

    confirm_days: int = 7  # how long a confirmation link works
    mails_per_address: int = 3  # confirmation mails to one address in a day
    mails_per_ip: int = 20  # confirmation mails asked from one IP address in an hour
    trusted_proxies: int = 0  # proxies in front that set X-Forwarded-For (the client's IP)


@dataclass(frozen=True)
class Settings:
    """All settings, by consumer."""

    site: SiteSettings = field(default_factory=SiteSettings)
    build: BuildSettings = field(default_factory=BuildSettings)
    mail: MailSettings = field(default_factory=MailSettings)
    service: ServiceSettings = field(default_factory=ServiceSettings)


_SECTIONS: tuple[type[Any], ...] = (SiteSettings, BuildSettings, MailSettings, ServiceSettings)
_SECTION_NAMES = {
    SiteSettings: "site",
    BuildSettings: "build",
    MailSettings: "mail",
    ServiceSettings: "service",
}


@dataclass(frozen=True)
class _Key:
    name: str
    section: type[Any]
    kind: str  # "text", "int", "per_lang", "secret"
    optional: bool
    metadata: Mapping[str, Any]


def _keys() -> dict[str, _Key]:
    found: dict[str, _Key] = {}
    for section in _SECTIONS:
        hints = get_type_hints(section)
        for f in fields(section):
            kind, optional = _kind(hints[f.name])
            found[f.name] = _Key(f.name, section, kind, optional, f.metadata)
    return found


def _kind(hint: Any) -> tuple[str, bool]:
    """How a field's type is read from text, and whether it may be unset."""
    args = get_args(hint)
    optional = get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args
    base = next(a for a in args if a is not type(None)) if optional else hint
    if base is Secret:
        return "secret", optional
    if base is bool:
        return "bool", optional
    if base is int:
        return "int", optional
    if get_origin(base) is Mapping:
        return "per_lang", optional
    return "text", optional


KEYS = _keys()
"""Every setting by name, as the dataclasses above declare it."""


_BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def _whole_number(value: Any) -> int | None:
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def _check_value(key: _Key, value: Any) -> tuple[Any, str | None]:
    """The value as the setting holds it, or what was expected instead."""
    if key.kind == "per_lang":
        if isinstance(value, str):
            value = dict.fromkeys(LANGS, value)
        if not isinstance(value, Mapping) or not all(
            isinstance(value.get(lang), str) and value[lang].strip() for lang in LANGS
        ):
            return None, 'a table with "ko" and "en" texts'
        return {lang: value[lang] for lang in LANGS}, None
    if key.kind == "bool":
        if isinstance(value, str) and value.strip().lower() in _BOOLEANS:
            value = _BOOLEANS[value.strip().lower()]
        return (value, None) if isinstance(value, bool) else (None, "true or false")
    if key.kind == "int":
        number = _whole_number(value)
        return (number, None) if number is not None else (None, "a whole number, 0 or more")
    if not isinstance(value, str) or not value.strip():
        return None, "a non-empty string"
    text = value.strip()
    check = key.metadata.get("check")
    if check == "url":
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return None, "an absolute http(s) URL"
    elif check == "search":
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https") or not parts.netloc or "{title}" not in text:
            return None, "an absolute http(s) URL with {title} where the title goes"
    elif check == "timezone":
        try:
            ZoneInfo(text)
        except (ZoneInfoNotFoundError, ValueError):
            return None, "an IANA time zone such as Asia/Seoul"
    choices = key.metadata.get("choices")
    if choices and text not in choices:
        return None, " or ".join(f'"{c}"' for c in choices)
    return (Secret(text) if key.kind == "secret" else text), None


def _from_file(path: Path) -> dict[str, Any]:
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the settings: {exc}", str(path)) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"expected TOML: {exc}", str(path)) from None
    if path.name == "pyproject.toml" or "tool" in document:
        return dict(document.get("tool", {}).get("feeds", {}))
    return document


def _from_environ(environ: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, key in KEYS.items():
        if key.kind == "per_lang":
            for lang in LANGS:
                variable = f"FEEDS_{name.upper()}_{lang.upper()}"
                if variable in environ:
                    values.setdefault(name, {})[lang] = environ[variable]
        elif (variable := f"FEEDS_{name.upper()}") in environ:
            values[name] = environ[variable]
    return values


def _merge(layers: list[tuple[dict[str, Any], str]]) -> tuple[dict[str, Any], list[Problem]]:
    merged: dict[str, Any] = {}
    problems: list[Problem] = []
    for raw, where in layers:
        for name, value in raw.items():
            key = KEYS.get(name)
            if key is None:
                problems.append(Problem(_unknown(name), where))
                continue
            if key.kind == "secret" and where != "environment":
                problems.append(
                    Problem(
                        f"setting {name}: secrets are read only from the environment "
                        f"(set FEEDS_{name.upper()})",
                        where,
                    )
                )
                continue
            if key.kind == "per_lang" and isinstance(value, Mapping) and where == "environment":
                value = {**merged.get(name, _DEFAULT_TEXT[name]), **value}
            checked, expected = _check_value(key, value)
            if expected is not None:
                shown = "a value" if key.kind == "secret" else repr(value)
                problems.append(
                    Problem(f"setting {name}: expected {expected}, found {shown}", where)
                )
            else:
                merged[name] = checked
    return merged, problems


def _unknown(name: str) -> str:
    known = [n for n, k in KEYS.items() if k.kind != "secret"]
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"unknown setting {name!r} ({hint}known: {', '.join(known)})"


def load_settings(
    config: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[Settings, list[Problem]]:
    """Settings from the file (default ./pyproject.toml), FEEDS_* variables and overrides.

    Returns the settings and warnings; raises ConfigError naming every bad key.
    """
    environ = os.environ if environ is None else environ
    path = config if config is not None else Path("pyproject.toml")
    layers: list[tuple[dict[str, Any], str]] = []
    if config is not None or path.exists():
        layers.append((_from_file(path), str(path)))
    layers.append((_from_environ(environ), "environment"))
    layers.append(({k: v for k, v in (overrides or {}).items() if v is not None}, "command line"))
    merged, problems = _merge(layers)
    if problems:
        raise ConfigError.from_problems(problems)
    warnings = []
    if "base_url" not in merged:
        warnings.append(
            Problem(
                f"no base_url is set: links point at {DEFAULT_BASE_URL} "
                "(set base_url in [tool.feeds] or FEEDS_BASE_URL)",
                severity="warning",
            )
        )
    if not merged.get("base_url", DEFAULT_BASE_URL).endswith("/"):
        merged["base_url"] += "/"
    return make_settings(**merged), warnings


def make_settings(**values: Any) -> Settings:
    """Settings from flat keys, as a settings file names them (for code and tests)."""
    by_section: dict[type[Any], dict[str, Any]] = {section: {} for section in _SECTIONS}
    for name, value in values.items():
        key = KEYS.get(name)
        if key is None:
            raise TypeError(f"unknown setting {name!r}")
        if key.kind == "secret" and isinstance(value, str):
            value = Secret(value)
        by_section[key.section][name] = value
    made: dict[str, Any] = {
        _SECTION_NAMES[section]: section(**kw) for section, kw in by_section.items()
    }
    return Settings(**made)


def mail_readiness(settings: Settings, sending: bool = False) -> list[str]:
    """What newsletters lack before they may go to real people: an unsubscribe target (RFC
    2369, and the bulk-sender rules of Gmail, Yahoo and Naver) and a real From address; and,
    when sending, the secret that signs each recipient's unsubscribe link."""
    site, found = settings.site, []
    if not (site.subscriptions_url or site.unsubscribe_url or site.unsubscribe_mailto):
        found.append(
            "newsletters have no unsubscribe link or List-Unsubscribe header: set "
            "subscriptions_url (with FEEDS_SECRET_KEY) or unsubscribe_mailto"
        )
    domain = site.author_email.rpartition("@")[2]
    if "." not in domain or domain.endswith((".localhost", ".local", ".invalid", ".test")):
        found.append(
            f"newsletters would come from {site.author_email}: set author_email to the address "
            "they are sent from"
        )
    links = "subscriptions_url" if site.subscriptions_url else "unsubscribe_url"
    url = urlsplit(site.subscriptions_url or site.unsubscribe_url or "https:")
    if url.scheme != "https" and url.hostname not in ("127.0.0.1", "::1", "localhost"):
        found.append(
            f"{links} is not https: mail providers make one-click unsubscribe (RFC 8058) "
            "an https POST"
        )
    if (
        sending
        and (site.subscriptions_url or site.unsubscribe_url)
        and not settings.mail.secret_key
    ):
        found.append(
            f"{links} is set but secret_key is not (FEEDS_SECRET_KEY): the links in the "
            "newsletters could not be signed"
        )
    return found
