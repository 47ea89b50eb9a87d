"""The `feeds` command line: a thin layer that turns errors into `Error: …` lines."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

from .archive import archive_json, summarize_archive
from .config import Settings, load_settings
from .errors import FeedsError, Problem
from .pool import cpu_count
from .terminal import ProgressLine, problem_lines

F = TypeVar("F", bound=Callable[..., Any])


SRC = click.argument(
    "src", type=click.Path(file_okay=False, path_type=Path), default="seeds", required=False
)
PORT = click.IntRange(1, 65535)
VERBOSE = click.option(
    "--verbose", "-v", is_flag=True, help="List every warning, not the first few of each kind."
)


def report(problems: Iterable[Problem], as_errors: bool = False, verbose: bool = True) -> None:
    """Print problems to stderr (terminal.problem_lines)."""
    for line in problem_lines(problems, as_errors, verbose):
        click.echo(line, err=True)


def handle_errors(command: F) -> F:
    """Run a command; a FeedsError becomes `Error:` lines and exit status 1, never a traceback."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except FeedsError as exc:
            report(exc.problems)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="feeds")
def main() -> None:
    """Publish a bilingual (Korean/English) digest of ML paper notes.

    Digests are plain-text files in SRC (default `seeds/`); `feeds check`
    validates them and `feeds build` turns them into feeds, newsletters and
    a static site in `dist/`.
    """


@main.command()
@SRC
@click.option("--strict", is_flag=True, help="Treat warnings as errors (exit 1 if there are any).")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the parsed archive as JSON on stdout (schema in the README).",
)
@VERBOSE
@handle_errors
def check(src: Path, strict: bool, as_json: bool, verbose: bool) -> None:
    """Parse every digest in SRC and report every warning and error.

    Exits 0 when there are no errors (and, with --strict, no warnings), 1 otherwise.
    """
    if as_json:
        document, warnings, errors = archive_json(src)
        click.echo(json.dumps(document, ensure_ascii=False, indent=2))
    else:
        summary = summarize_archive(src, workers=cpu_count())
        warnings, errors = list(summary.warnings), list(summary.errors)
    report(errors)
    report(warnings, as_errors=strict, verbose=verbose)
    if not as_json:
        click.echo(
            f"{summary.digests} digests, {summary.notes} notes, {summary.tags} tags; "
            f"{len(errors)} errors, {len(warnings)} warnings"
        )
    sys.exit(1 if errors or (strict and warnings) else 0)


CONFIG = click.option(
    "--config",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="A TOML settings file (default: [tool.feeds] in ./pyproject.toml).",
)


def settings_for(config: Path | None, **overrides: Any) -> Settings:
    """Load settings, print their warnings, and return them."""
    settings, warnings = load_settings(config, overrides)
    report(warnings)
    return settings


def out_option(help: str) -> Callable[[F], F]:
    return click.option(
        "--out",
        type=click.Path(file_okay=False, path_type=Path),
        default="dist",
        show_default=True,
        help=help,
    )


@main.command()
@SRC
@out_option("Folder to publish into; replaced as a whole, atomically.")
@CONFIG
@click.option("--base-url", help="Public URL the site is served from (overrides base_url).")
@click.option(
    "--feed-limit", type=int, help="Items per feed, newest first; 0 for all (overrides feed_limit)."
)
@click.option(
    "--workers",
    type=click.IntRange(min=0),
    help="Processes to render with; 0 for one per core (overrides workers).",
)
@click.option(
    "--keep-going",
    is_flag=True,
    default=None,
    help="Publish the digests that parse, leaving out those with errors (exit status 1).",
)
@click.option(
    "--frozen-state",
    is_flag=True,
    default=None,
    help="Fail, publishing nothing, if .feeds-state.json would change (for CI).",
)
@VERBOSE
@handle_errors
def build(
    src: Path,
    out: Path,
    config: Path | None,
    base_url: str | None,
    feed_limit: int | None,
    workers: int | None,
    keep_going: bool | None,
    frozen_state: bool | None,
    verbose: bool,
) -> None:
    """Build the digests in SRC (default seeds/) into feeds, newsletters and pages in OUT.

    Nothing in OUT changes unless the whole build succeeds; files whose bytes
    are unchanged keep their modification time, and files no longer produced
    are removed. Settings come from [tool.feeds] in pyproject.toml (or
    --config), then FEEDS_* environment variables, then these options.
    """
    options = {"keep_going": keep_going, "frozen_state": frozen_state}
    settings = settings_for(
        config, base_url=base_url, feed_limit=feed_limit, workers=workers, **options
    )
    from .build import build as run_build  # here: `feeds check` needs none of it

    progress = ProgressLine() if sys.stderr.isatty() else None
    try:
        result = run_build(src, out, settings, progress)
    finally:
        if progress is not None:
            progress.close()
    report([*result.errors, *result.warnings], verbose=verbose)
    click.echo(result.summary(out))
    if result.state_changed:
        state = src / ".feeds-state.json"
        click.echo(f"Updated {state} ({result.state_changed}): commit it with the digests.")
    if result.left_out:
        click.echo(f"Left out {len(result.left_out)} digest files with errors:", err=True)
        for source in result.left_out:
            click.echo(f"  {source}", err=True)
        sys.exit(1)


@main.command()
@SRC
@out_option("Folder to build into and serve.")
@click.option("--port", type=PORT, default=8000, show_default=True, help="Port on 127.0.0.1.")
@click.option("--watch/--no-watch", default=True, help="Rebuild when SRC or the templates change.")
@CONFIG
@handle_errors
def serve(src: Path, out: Path, port: int, watch: bool, config: Path | None) -> None:
    """Build SRC, serve OUT on http://127.0.0.1:PORT/ and rebuild on changes.

    The build uses http://127.0.0.1:PORT/ as its base URL so every link works
    locally: run `feeds build` again before publishing OUT. A failing rebuild
    prints its errors and the last good site stays served.
    """
    from .serve import preview

    settings = settings_for(config, base_url=f"http://127.0.0.1:{port}/")
    preview(src, out, settings, port, watch, _Console(yes=True))


def path_option(name: str, help: str, **kw: Any) -> Callable[[F], F]:
    """An option naming a file (a folder with dir=True)."""
    is_dir = kw.pop("dir", False)
    kind = click.Path(file_okay=not is_dir, dir_okay=is_dir, path_type=Path)
    return click.option(name, type=kind, help=help, **kw)


DB = path_option("--db", "The subscribers database (SQLite; default: the setting subscribers_db).")


@main.command()
@click.argument("digest_id", required=False)
@click.option("--lang", type=click.Choice(["ko", "en"]), help="Send only this language.")
@path_option(
    "--subscribers",
    "A CSV list (email,lang[,name]) to send to instead of the confirmed subscribers.",
)
@path_option("--unsubscribed", "Addresses never to mail, one a line (setting unsubscribed).")
@click.option(
    "--skip-invalid", is_flag=True, help="Send to the valid rows of a list with bad ones."
)
@click.option("--dry-run", is_flag=True, help="Write every message into --outbox, send nothing.")
@path_option("--outbox", "Where --dry-run writes the messages.", dir=True, default="outbox")
@click.option("--rate", type=click.FloatRange(min=0, min_open=True), help="At most N a second.")
@path_option("--dist", "The built site with the newsletters.", dir=True, default="dist")
@DB
@click.option("--suppressed", "list_suppressed", is_flag=True, help="List suppressed addresses.")
@click.option("--unsuppress", multiple=True, metavar="ADDRESS", help="Allow mail to it again.")
@click.option("--yes", is_flag=True, help="Do not ask before sending.")
@CONFIG
@handle_errors
def send(
    digest_id: str | None,
    lang: str | None,
    subscribers: Path | None,
    unsubscribed: Path | None,
    skip_invalid: bool,
    dry_run: bool,
    outbox: Path,
    rate: float | None,
    dist: Path,
    db: Path | None,
    list_suppressed: bool,
    unsuppress: tuple[str, ...],
    yes: bool,
    config: Path | None,
) -> None:
    """Mail the newsletter of DIGEST_ID to every confirmed subscriber, exactly once each.

    SMTP settings come from [tool.feeds] (smtp_host, smtp_port, smtp_user,
    smtp_security, smtp_timeout, smtp_data_timeout) or FEEDS_SMTP_* variables;
    the password only from FEEDS_SMTP_PASSWORD. The subscribers database records
    every message, so running the same send again sends only what is missing.
    Addresses a server refused for good are suppressed for every later send:
    --suppressed lists them, --unsuppress allows one again.
    """
    from . import send as sending

    settings = settings_for(config)
    store = db or Path(settings.mail.subscribers_db)
    if list_suppressed or unsuppress:
        for line in sending.suppressions(store, unsuppress, list_suppressed):
            click.echo(line)
        return
    if digest_id is None:
        raise FeedsError("expected the DIGEST_ID of the newsletter to send")
    if subscribers is not None and not subscribers.is_file():
        raise FeedsError("cannot read the subscribers: no such file", str(subscribers))
    langs = sending.wanted_langs(lang)
    request = sending.Request(
        digest_id, langs, subscribers, unsubscribed, skip_invalid, dist, db, rate
    )
    if not sending.run(request, settings, _Console(yes), outbox if dry_run else None):
        sys.exit(1)


def with_store(command: F) -> F:
    """--db and --config, and errors as `Error:` lines."""
    return DB(CONFIG(handle_errors(command)))


def store_of(db: Path | None, config: Path | None) -> tuple[Settings, Path]:
    settings = settings_for(config)
    return settings, db or Path(settings.mail.subscribers_db)


@main.group()
def subscribers() -> None:
    """The subscribers database and the subscription service."""


@subscribers.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=PORT, default=8001, show_default=True, help="Port to listen on.")
@click.option("--threads", type=click.IntRange(1, 64), default=8, show_default=True)
@with_store
def subscribers_serve(
    host: str, port: int, threads: int, db: Path | None, config: Path | None
) -> None:
    """Serve sign-up, confirmation, preferences and one-click unsubscribe (waitress)."""
    from .web import serve

    settings, store = store_of(db, config)
    serve(settings, store, host, port, threads, lambda line: click.echo(line, err=True))


@subscribers.command("import")
@click.argument("csv_file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--confirmed", is_flag=True, help="They confirmed elsewhere: mail them.")
@with_store
def subscribers_import(
    csv_file: Path, confirmed: bool, db: Path | None, config: Path | None
) -> None:
    """Add the subscribers of a CSV list (email,lang[,name]); known addresses stay as they are."""
    from .lists import import_list

    for line in import_list(csv_file, store_of(db, config)[1], confirmed):
        click.echo(line)


@subscribers.command("export")
@with_store
def subscribers_export(db: Path | None, config: Path | None) -> None:
    """Print every subscriber as CSV (email,lang,status,subscribed_at,confirmed_at,left_at)."""
    from .lists import export_list

    click.echo(export_list(store_of(db, config)[1]), nl=False)


@subscribers.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per subscriber.")
@with_store
def subscribers_list(as_json: bool, db: Path | None, config: Path | None) -> None:
    """List the subscribers: address, languages, status, when they came and left."""
    from .lists import list_lines

    for line in list_lines(store_of(db, config)[1], as_json):
        click.echo(line)


@subscribers.command("forget")
@click.argument("addresses", nargs=-1, required=True)
@with_store
def subscribers_forget(addresses: tuple[str, ...], db: Path | None, config: Path | None) -> None:
    """Erase all data of these addresses, keeping a hash so they are never mailed again."""
    from .lists import forget

    for line in forget(store_of(db, config)[1], addresses):
        click.echo(line)


@subscribers.command("bounces")
@click.argument("mailbox", required=False, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--imap", metavar="URL", help="imaps://user@host[:port]/FOLDER (FEEDS_IMAP_PASSWORD)."
)
@with_store
def subscribers_bounces(
    mailbox: Path | None, imap: str | None, db: Path | None, config: Path | None
) -> None:
    """Read bounces and complaints (a Maildir, an mbox, or IMAP) and suppress whom they name."""
    from .bounces import process_bounces

    settings, store = store_of(db, config)
    for line in process_bounces(settings, store, mailbox, imap):
        click.echo(line)


class _Console:
    """A send's questions and messages, on the terminal."""

    def __init__(self, yes: bool):
        self.yes = yes

    def report(self, problems: Iterable[Problem], as_errors: bool) -> None:
        report(problems, as_errors)

    def say(self, line: str, result: bool = False) -> None:
        click.echo(line, err=not result)

    def confirm(self, question: str) -> None:
        if not self.yes:
            click.confirm(question, abort=True)

    @contextmanager
    def progress(self, total: int) -> Iterator[Callable[[], None]]:
        with click.progressbar(length=total, label="Sending", file=sys.stderr) as bar:
            yield lambda: bar.update(1)
