"""The Jinja environment every renderer shares, and template errors as FeedsErrors."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import jinja2
from jinja2 import meta

from .errors import TemplateError
from .i18n import wrap
from .links import linkify


def default_templates_dir() -> Path:
    """The templates shipped with feeds: inside the wheel, or beside the package in a checkout."""
    inside = Path(__file__).resolve().parent / "templates"
    return inside if inside.is_dir() else Path(__file__).resolve().parent.parent / "templates"


def make_environment(templates_dir: str | None) -> jinja2.Environment:
    """StrictUndefined, autoescaping for html, xml and mjml; user templates first, then defaults."""
    folders = [default_templates_dir()]
    if templates_dir:
        folders.insert(0, Path(templates_dir))
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(f) for f in folders]),
        undefined=jinja2.StrictUndefined,
        autoescape=jinja2.select_autoescape(["html", "xml", "mjml"]),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        # One environment serves one build: no need to stat every template on every use.
        auto_reload=False,
    )
    env.filters["wrap"] = wrap
    env.filters["linkify"] = linkify
    return env


def asset(templates_dir: str | None, name: str) -> bytes:
    """A file published as it is (an icon), from the templates folder or the shipped one."""
    for folder in ([Path(templates_dir)] if templates_dir else []) + [default_templates_dir()]:
        path = folder / name
        if path.is_file():
            return path.read_bytes()
    raise TemplateError(f"not found in the templates folders: {name}", name)


def template_closure(env: jinja2.Environment, roots: Iterable[str]) -> dict[str, str] | None:
    """Every template that rendering `roots` may use (through extends, include, import and
    from), by name, with its text; None when a template names another only at run time, or
    cannot be read: then any template may be used."""
    found: dict[str, str] = {}
    waiting = list(roots)
    while waiting:
        name = waiting.pop()
        if name in found:
            continue
        try:
            source = found[name] = env.loader.get_source(env, name)[0]  # type: ignore[union-attr]
            named = list(meta.find_referenced_templates(env.parse(source)))
        except jinja2.TemplateError:  # missing or broken: rendering it will say so
            return None
        if None in named:
            return None
        waiting += [n for n in named if n is not None]
    return found


def templates_hash(env: jinja2.Environment, roots: Iterable[str]) -> str:
    """A hash of the name and text of every template rendering `roots` may use (of every
    template, when that cannot be known): part of the cache key of what they render."""
    sources = template_closure(env, roots)
    if sources is None:
        sources = {}
        for name in env.list_templates():
            try:
                sources[name] = env.loader.get_source(env, name)[0]  # type: ignore[union-attr]
            except jinja2.TemplateNotFound:
                sources[name] = "\0missing"
            except UnicodeDecodeError:  # an icon beside the templates: not one of them
                continue
    digest = hashlib.sha256()
    for name in sorted(sources):
        digest.update(f"{name}\0{sources[name]}\0".encode())
    return digest.hexdigest()


@contextmanager
def template_errors(name: str) -> Iterator[None]:
    """Turn any Jinja error while rendering `name` into a TemplateError naming file and line."""
    try:
        yield
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(
            f"template syntax: {exc.message}", exc.filename or exc.name or name, exc.lineno
        ) from None
    except jinja2.TemplateNotFound as exc:
        raise TemplateError(f"template not found: {exc.name}", name) from None
    except jinja2.TemplateError as exc:
        raise TemplateError(f"template error: {exc}", *_template_frame(exc, name)) from None
    except TemplateError:
        raise
    except Exception as exc:  # raised by what a template called: {{ 1 / 0 }}, a bad .format()
        where = _template_frame(exc, name)
        raise TemplateError(f"template error: {type(exc).__name__}: {exc}", *where) from None


def _template_frame(exc: BaseException, name: str) -> tuple[str, int | None]:
    """The innermost template file and line in a traceback, as Jinja rewrites it."""
    tb = exc.__traceback__
    found: tuple[str, int | None] = (name, None)
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if not filename.endswith(".py"):
            found = (filename, tb.tb_lineno)
        tb = tb.tb_next
    return found


def render(env: jinja2.Environment, name: str, **context: object) -> str:
    """Render a template by name; errors become TemplateError with the template's file and line."""
    with template_errors(name):
        return env.get_template(name).render(**context)
