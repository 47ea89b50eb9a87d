"""Settings: `[tool.feeds]` in pyproject.toml (or a TOML file), then FEEDS_* variables, then CLI options."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import ConfigError, Problem
from .model import LANGS, Lang

DEFAULT_BASE_URL = "http://localhost:8000/"
_PER_LANG = ("title", "description")
_DEFAULT_TEXT: dict[str, dict[str, str]] = {
    "title": {"ko": "ML 논문 노트", "en": "ML Paper Notes"},
    "description": {
        "ko": "머신러닝 논문에 대한 짧은 노트",
        "en": "Short notes on machine-learning papers",
    },
}
_STRINGS = (
    "base_url",
    "author_name",
    "author_email",
    "timezone",
    "websub_hub",
    "unsubscribe_url",
    "unsubscribe_mailto",
    "subscribe_url",
    "templates_dir",
    "cache_dir",
    "smtp_host",
    "smtp_user",
    "smtp_security",
    "unsubscribe_secret",
    "unsubscribed",
    "ledger",
)
_INTS = ("feed_limit", "tag_page_size", "smtp_port", "workers")
KEYS = (*_STRINGS, *_INTS, *_PER_LANG)


@dataclass(frozen=True)
class Settings:
    """Everything the build and the sender need to know about the site."""

    base_url: str = DEFAULT_BASE_URL
    title: Mapping[Lang, str] = field(default_factory=lambda: dict(_DEFAULT_TEXT["title"]))
    description: Mapping[Lang, str] = field(
        default_factory=lambda: dict(_DEFAULT_TEXT["description"])
    )
    author_name: str = "feeds"
    author_email: str = "feeds@localhost"
    timezone: str = "Asia/Seoul"
    feed_limit: int = 50
    tag_page_size: int = 200
    websub_hub: str | None = None
    unsubscribe_url: str | None = None
    unsubscribe_mailto: str | None = None
    subscribe_url: str | None = None
    templates_dir: str | None = None
    cache_dir: str = ".feeds-cache"
    workers: int = 0
    smtp_host: str | None = None
    smtp_port: int | None = None
    smtp_user: str | None = None
    smtp_security: str = "starttls"
    unsubscribe_secret: str | None = None
    unsubscribed: str | None = None
    ledger: str | None = None

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def domain(self) -> str:
        return urlsplit(self.base_url).hostname or "localhost"


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


def _check(raw: Mapping[str, Any], where: str) -> tuple[dict[str, Any], list[Problem]]:
    values: dict[str, Any] = {}
    problems: list[Problem] = []

    def bad(key: str, expected: str, value: Any) -> None:
        problems.append(Problem(f"setting {key}: expected {expected}, found {value!r}", where))

    for key, value in raw.items():
        if key not in KEYS:
            problems.append(Problem(f"unknown setting {key!r} (known: {', '.join(KEYS)})", where))
        elif key in _PER_LANG:
            if isinstance(value, str):
                value = dict.fromkeys(LANGS, value)
            if not isinstance(value, Mapping) or not all(
                isinstance(value.get(lang), str) and value[lang].strip() for lang in LANGS
            ):
                bad(key, 'a table with "ko" and "en" texts', value)
            else:
                values[key] = {lang: value[lang] for lang in LANGS}
        elif key in _INTS:
            if isinstance(value, str) and value.strip().isdigit():
                value = int(value)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                bad(key, "a whole number, 0 or more", value)
            else:
                values[key] = value
        elif not isinstance(value, str) or not value.strip():
            bad(key, "a non-empty string", value)
        else:
            values[key] = value.strip()
    return values, problems


def _validate(values: dict[str, Any], where: str) -> list[Problem]:
    problems = []
    for key in ("base_url", "websub_hub", "unsubscribe_url", "subscribe_url"):
        url = values.get(key)
        if url is not None:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                problems.append(
                    Problem(
                        f"setting {key}: expected an absolute http(s) URL, found {url!r}", where
                    )
                )
    if "timezone" in values:
        try:
            ZoneInfo(values["timezone"])
        except (ZoneInfoNotFoundError, ValueError):
            problems.append(
                Problem(
                    f"setting timezone: expected an IANA time zone such as Asia/Seoul, "
                    f"found {values['timezone']!r}",
                    where,
                )
            )
    if values.get("smtp_security", "starttls") not in ("starttls", "tls", "none"):
        problems.append(
            Problem(
                'setting smtp_security: expected "starttls", "tls" or "none", '
                f"found {values['smtp_security']!r}",
                where,
            )
        )
    return problems


def _from_environ(environ: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key in KEYS:
        if key in _PER_LANG:
            for lang in LANGS:
                name = f"FEEDS_{key.upper()}_{lang.upper()}"
                if name in environ:
                    values.setdefault(key, {}).update({lang: environ[name]})
        elif (name := f"FEEDS_{key.upper()}") in environ:
            values[key] = environ[name]
    return values


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
    merged: dict[str, Any] = {}
    problems: list[Problem] = []
    for raw, where in layers:
        for key, value in raw.items():
            if key in _PER_LANG and isinstance(value, Mapping) and where == "environment":
                value = {**merged.get(key, _DEFAULT_TEXT[key]), **value}
            checked, found = _check({key: value}, where)
            problems += found + _validate(checked, where)
            merged.update(checked)
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
    return Settings(**merged), warnings
