"""The `feeds` command line: a thin layer that turns errors into `Error: …` lines."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from .archive import read_archive, summarize_archive
from .config import Settings, load_settings
from .errors import FeedsError, Problem, grouped
from .model import digest_to_json
from .pool import cpu_count

if TYPE_CHECKING:
    from .build import BuildReport

F = TypeVar("F", bound=Callable[..., Any])


def run_build(*args: Any, **kwargs: Any) -> BuildReport:
    """feeds.build.build, imported when a command builds: `feeds check` needs none of it."""
    from .build import build

    return build(*args, **kwargs)


SRC = click.argument(
    "src", type=click.Path(file_okay=False, path_type=Path), default="seeds", required=False
)


def report(problems: Iterable[Problem], as_errors: bool = False, verbose: bool = True) -> None:
    """Print problems to stderr, one `Error: …` or `Warning: …` line each; unless verbose,
    warnings of a kind beyond the first few as one count line."""
    problems = list(problems)
    for problem in problems:
        if as_errors or problem.severity == "error":
            click.echo(f"Error: {problem}", err=True)
    warnings = [p for p in problems if not (as_errors or p.severity == "error")]
    for _, line in grouped(warnings, verbose):
        click.echo(f"Warning: {line}", err=True)


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


def run() -> None:
    """The `feeds` command (and `python -m feeds`): main(), then end the process at once.

    A build leaves millions of objects (the parsed archive, the render index) that a normal
    exit frees one by one, adding a tenth of a second to every build; as mypy does, the output
    is flushed and the process ends without that. Tests and other callers use main().
    """
    try:
        main()
        status: object = 0
    except SystemExit as exc:
        status = exc.code
    if status is not None and not isinstance(status, int):
        print(status, file=sys.stderr)  # as Python does for sys.exit("message")
        status = 1
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:  # a closed pipe: as the interpreter, report failure
        status = status or 120
    os._exit(status or 0)


@main.command()
@SRC
@click.option("--strict", is_flag=True, help="Treat warnings as errors (exit 1 if there are any).")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the parsed archive as JSON on stdout (schema in the README).",
)
@click.option(
    "--verbose", "-v", is_flag=True, help="List every warning, not the first few of each kind."
)
@handle_errors
def check(src: Path, strict: bool, as_json: bool, verbose: bool) -> None:
    """Parse every digest in SRC and report every warning and error.

    Exits 0 when there are no errors (and, with --strict, no warnings), 1 otherwise.
    """
    if as_json:
        archive, warnings, errors, _ = read_archive(src)
        document = {
            "digests": [digest_to_json(d) for d in archive.digests],
            "warnings": [p.to_json() for p in warnings],
            "errors": [p.to_json() for p in errors],
        }
        click.echo(json.dumps(document, ensure_ascii=False, indent=2))
    else:
        summary = summarize_archive(src, workers=cpu_count())
        warnings, errors = summary.warnings, summary.errors
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


class ProgressLine:
    """A one-line status on a terminal, shown once a build has run for more than a moment."""

    def __init__(self, delay: float = 0.5):
        self.start = time.monotonic()
        self.delay = delay
        self.shown = False

    def __call__(self, stage: str, count: int) -> None:
        if time.monotonic() - self.start >= self.delay:
            click.echo(f"\r\033[K{stage}: {count} files", nl=False, err=True)
            self.shown = True

    def close(self) -> None:
        if self.shown:
            click.echo("\r\033[K", nl=False, err=True)


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
@click.option(
    "--verbose", "-v", is_flag=True, help="List every warning, not the first few of each kind."
)
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
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=8000,
    show_default=True,
    help="Port on 127.0.0.1.",
)
@click.option(
    "--watch/--no-watch",
    default=True,
    show_default=True,
    help="Rebuild when a file in SRC or the templates changes.",
)
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


@main.command()
@click.argument("digest_id", required=False)
@click.option(
    "--lang", type=click.Choice(["ko", "en"]), help="Send only this language (default: both)."
)
@click.option(
    "--subscribers",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="CSV file with a header: email,lang[,name]; lang is ko, en or both.",
)
@click.option(
    "--unsubscribed",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Addresses never to mail, one a line (overrides the setting unsubscribed).",
)
@click.option(
    "--skip-invalid", is_flag=True, help="Send to the valid rows even if some rows are invalid."
)
@click.option("--dry-run", is_flag=True, help="Write every message into --outbox and send nothing.")
@click.option(
    "--outbox",
    type=click.Path(file_okay=False, path_type=Path),
    default="outbox",
    show_default=True,
    help="Where --dry-run writes the messages.",
)
@click.option(
    "--rate", type=click.FloatRange(min=0, min_open=True), help="At most N messages per second."
)
@click.option(
    "--dist",
    type=click.Path(file_okay=False, path_type=Path),
    default="dist",
    show_default=True,
    help="The built site to take the newsletters from.",
)
@click.option(
    "--ledger",
    type=click.Path(dir_okay=False, path_type=Path),
    help="SQLite send ledger (default: beside the subscribers file).",
)
@click.option("--suppressed", "list_suppressed", is_flag=True, help="List suppressed addresses.")
@click.option(
    "--unsuppress", multiple=True, metavar="ADDRESS", help="Allow mail to an address again."
)
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
    ledger: Path | None,
    list_suppressed: bool,
    unsuppress: tuple[str, ...],
    yes: bool,
    config: Path | None,
) -> None:
    """Mail the newsletter of DIGEST_ID to every subscriber, exactly once each.

    SMTP settings come from [tool.feeds] (smtp_host, smtp_port, smtp_user,
    smtp_security, smtp_timeout, smtp_data_timeout) or FEEDS_SMTP_* variables;
    the password only from FEEDS_SMTP_PASSWORD. A ledger records every message,
    so running the same send again sends only what is missing. Addresses a
    server refused for good are suppressed for every later send: --suppressed
    lists them, --unsuppress allows one again.
    """
    from . import send as sending

    settings = settings_for(config)
    if subscribers is None:
        raise FeedsError("expected --subscribers FILE.csv")
    if list_suppressed or unsuppress:
        path = ledger or sending.default_ledger(settings, subscribers)
        for line in sending.suppressions(path, unsuppress, list_suppressed):
            click.echo(line)
        return
    if digest_id is None:
        raise FeedsError("expected the DIGEST_ID of the newsletter to send")
    langs = sending.wanted_langs(lang)
    request = sending.Request(
        digest_id, langs, subscribers, unsubscribed, skip_invalid, dist, ledger, rate
    )
    if not sending.run(request, settings, _Console(yes), outbox if dry_run else None):
        sys.exit(1)


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
