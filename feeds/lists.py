"""Lists of people: the subscribers CSV `feeds send --subscribers` and `feeds subscribers
import` read, the addresses never to mail, and what `feeds subscribers` prints."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .errors import Problem, SendError
from .mail import Address, Recipient, parse_address
from .mime import header_text
from .model import Lang
from .subscribers import LEFT, STATUSES, Subscribers


@dataclass(frozen=True)
class Subscriber:
    address: Address
    lang: str  # ko, en or both
    name: str
    line: int
    status: str = ""  # in an exported list: who left stays left when imported again


class _Lines:
    """The lines of a text, split at LF only (a CR or U+2028 in a name is no line break, as
    for grep and editors), counted as the CSV reader takes them."""

    def __init__(self, text: str):
        self._lines = iter(line + "\n" for line in text.split("\n"))
        self.taken = 0

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = next(self._lines)
        self.taken += 1
        return line


def _csv_rows(path: Path) -> Iterator[tuple[int, list[str] | str]]:
    """Each record with the line it starts on (a quoted field may span lines), or what is wrong
    with it."""
    try:
        text = path.read_bytes().decode("utf-8-sig")  # as written: a CR stays a CR
    except (OSError, UnicodeDecodeError) as exc:
        raise SendError(f"cannot read the subscribers: {exc}", str(path)) from None
    lines = _Lines(text.replace("\r\n", "\n"))
    reader = csv.reader(lines)
    while True:
        start = lines.taken + 1
        try:
            yield start, next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield start, f"expected a CSV row, found a line it cannot read ({exc})"


def read_subscribers(path: Path) -> tuple[list[Subscriber], list[Problem]]:
    """Subscribers from a CSV file `email,lang[,name]`, and a problem for every bad row."""
    source = str(path)
    rows = _csv_rows(path)
    first = next(rows, (1, []))[1]
    header = [h.strip().lower() for h in first] if isinstance(first, list) else []
    if "email" not in header or "lang" not in header:
        raise SendError(
            f'expected a header line "email,lang[,name]", found "{",".join(header)}"', source, 1
        )
    problems: list[Problem] = []
    subscribers: list[Subscriber] = []
    first_line: dict[str, int] = {}
    for number, row in rows:
        if isinstance(row, str):
            problems.append(Problem(row, source, number))
            continue
        if not any(cell.strip() for cell in row):
            continue
        cells = dict(zip(header, (c.strip() for c in row), strict=False))
        text, lang = cells.get("email", ""), cells.get("lang", "").lower()
        address = parse_address(text)
        if isinstance(address, str):
            problems.append(
                Problem(f'expected an email address, found "{text}": {address}', source, number)
            )
            continue
        if lang not in ("ko", "en", "both"):
            problems.append(
                Problem(f'expected the language ko, en or both, found "{lang}"', source, number)
            )
            continue
        if address.key in first_line:
            problems.append(
                Problem(
                    f"{address.normalized} is already listed at line {first_line[address.key]}",
                    source,
                    number,
                )
            )
            continue
        status = cells.get("status", "").lower()
        if status not in ("", *STATUSES):
            problems.append(
                Problem(
                    f'expected a status ({", ".join(STATUSES)}), found "{status}"', source, number
                )
            )
            continue
        first_line[address.key] = number
        name = header_text(cells.get("name", ""))
        subscribers.append(Subscriber(address, lang, name, number, status))
    return subscribers, problems


def read_unsubscribed(path: Path) -> set[str]:
    """The addresses (keys) never to mail: one a line, `Name <address>` allowed, `#` comments.
    Raises SendError naming every line that is neither, or the file when it cannot be read."""
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise SendError(
            f"cannot read the unsubscribed addresses ({reason}): nothing was sent", str(path)
        ) from None
    found: set[str] = set()
    problems = []
    for number, raw in enumerate(lines, 1):
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        inner = text[:-1].rpartition("<")[2] if text.endswith(">") else text
        address = parse_address(inner.strip())
        if isinstance(address, str):
            problems.append(
                Problem(
                    f'expected an address, "Name <address>" or a # comment, found "{text}"',
                    str(path),
                    number,
                )
            )
        else:
            found.add(address.key)
    if problems:
        raise SendError.from_problems(problems)
    return found


@dataclass
class Chosen:
    recipients: list[Recipient]
    unsubscribed: int
    suppressed: int


def choose(
    subscribers: Iterable[Subscriber],
    langs: Iterable[Lang],
    unsubscribed: set[str],
    is_suppressed: Callable[[str], bool],
) -> Chosen:
    """One recipient per subscriber and wanted language, but none unsubscribed or suppressed."""
    wanted = tuple(langs)
    chosen = Chosen([], 0, 0)
    for sub in subscribers:
        if sub.address.key in unsubscribed or sub.status in ("pending", *LEFT):
            chosen.unsubscribed += 1  # by the list, or (an exported list) by its status
        elif is_suppressed(sub.address.key):
            chosen.suppressed += 1
        else:
            chosen.recipients += [
                Recipient(sub.address, lang, sub.name)
                for lang in wanted
                if sub.lang in (lang, "both")
            ]
    return chosen


def import_list(path: Path, db: Path, confirmed: bool) -> Iterator[str]:
    """`feeds subscribers import`: every row of a CSV list into the database, or none (every
    bad row is an error)."""
    rows, problems = read_subscribers(path)
    if problems:
        raise SendError.from_problems(problems)
    with Subscribers.open(db) as people:
        added = people.add(((r.address, r.lang, r.status) for r in rows), confirmed)
    state = "confirmed" if confirmed else "unconfirmed: mailed only once they confirm"
    noun = "subscriber" if added == 1 else "subscribers"
    yield f"Imported {added} {noun} ({state}); {len(rows) - added} known already or suppressed."


EXPORT_COLUMNS = ("email", "lang", "status", "subscribed_at", "confirmed_at", "left_at")


def export_list(db: Path) -> str:
    """`feeds subscribers export`: every subscriber as CSV (importable again)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    with Subscribers.open(db) as people:
        for row in people.all():
            writer.writerow([row.to_json()[column] or "" for column in EXPORT_COLUMNS])
    return out.getvalue()


def list_lines(db: Path, as_json: bool) -> Iterator[str]:
    """`feeds subscribers list`: one line per subscriber (as JSON: an array, one object a line)."""
    with Subscribers.open(db) as people:
        rows = people.all()
    if as_json:
        objects = [json.dumps(row.to_json(), ensure_ascii=False) for row in rows]
        yield "[" + ",\n".join(objects) + "]"
        return
    for row in rows:
        when = row.left_at or row.confirmed_at or row.subscribed_at or ""
        yield f"{row.address}\t{row.lang}\t{row.status}\t{when}"
    confirmed = sum(r.status == "confirmed" for r in rows)
    yield f"{len(rows)} subscriber{'' if len(rows) == 1 else 's'}, {confirmed} confirmed"


def forget(db: Path, addresses: Iterable[str]) -> Iterator[str]:
    """`feeds subscribers forget`: erase each address's data, keeping a hash to suppress it."""
    with Subscribers.open(db) as people:
        for text in addresses:
            address = parse_address(text.strip())
            if isinstance(address, str):
                raise SendError(f'expected an email address, found "{text}": {address}')
            known = people.forget(address.key)
            said = "Forgot" if known else "Not a subscriber; never to be mailed"
            yield f"{said}: {address.normalized}"
