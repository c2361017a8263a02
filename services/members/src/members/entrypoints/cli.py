"""Command line of the members service. `import`: members and their group seats from a CSV file as a spreadsheet
saves it, streamed in batches through the bulk handler (service_layer/bulk.py).

    python -m members.entrypoints.cli import members.csv [--dry-run] [--database-url URL] [--batch-size 500]

The file: UTF-8, with or without a byte order mark; fields separated by `;` or `,` (or a tab: told by the header
line); a header line naming the columns, in any order (the Danish names in COLUMNS work as well):

    name;email;phone;organisation;organisation_kind;cvr;job_title;locale;consents;groups
    Mette Eksempel;mette@example.org;;Eksempel Kommune;offentlig;;Kontorchef;da;;offentlig-digitalisering-oest

Required: name, email, organisation, organisation_kind (public_authority / supplier / other, or offentlig /
leverandør / andet), job_title. Optional: phone, cvr, locale (da / en; da when empty), consents and groups: several
separated by `|` — group slugs, each optionally with `:coordinator` (`digitalisering-oest|it-vest:coordinator`).

Every line goes through the same rules as POST /members and a join by the administration. A line that breaks one is
reported (line number, column, reason: the values are not repeated, as they are personal data) and leaves nothing
behind; the other lines go in. Run it again with the same file and nothing changes (members are found by email
address, seats by member and group): fix the reported lines and run the whole file again. `--dry-run` does all of it
and rolls each batch back: each batch is checked against the database as it is, so a group that only the earlier
batches of this same file would fill, or an address repeated in another batch, is not foreseen.

Progress goes to stderr (a bar on a terminal, a line every 10 % otherwise); the report to stdout. Exit status 0:
every line imported (or would be); 1: some lines were refused; 2: the file could not be read at all.
The running service's relay publishes the events: woken by NOTIFY on PostgreSQL, within a second on SQLite.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import io
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from pydantic import ValidationError

from ..bootstrap import bootstrap
from ..config import Settings
from ..service_layer.bulk import BatchOutcome, ImportMembers, ImportRow, LineError, import_members
from ..service_layer.translator import to_contract_of_checked_input

# column -> the names a header may give it
COLUMNS = {
    "name": ("name", "navn"),
    "email": ("email", "e-mail", "mail", "e-mailadresse"),
    "phone": ("phone", "telefon", "tlf"),
    "organisation": ("organisation", "organization", "virksomhed"),
    "organisation_kind": ("organisation_kind", "organization_kind", "kind", "organisationstype", "type"),
    "cvr": ("cvr", "cvr-nummer", "cvr_nummer"),
    "job_title": ("job_title", "stilling", "titel"),
    "locale": ("locale", "sprog", "language"),
    "consents": ("consents", "samtykker"),
    "groups": ("groups", "grupper", "netværksgrupper"),
}
REQUIRED = ("name", "email", "organisation", "organisation_kind", "job_title")
KINDS = {
    "public_authority": "public_authority",
    "offentlig": "public_authority",
    "offentlig myndighed": "public_authority",
    "supplier": "supplier",
    "leverandør": "supplier",
    "other": "other",
    "andet": "other",
}
ROLES = ("member", "coordinator")
# where the request model's fields are in the file
FIELD_COLUMN = {
    "organisation.name": "organisation",
    "organisation.kind": "organisation_kind",
    "organisation.cvr": "cvr",
}
MAX_GROUPS = 50
DELIMITERS = (";", ",", "\t")


class FileRefused(Exception):
    """The file as a whole cannot be imported (not CSV as described, a column missing, an unknown column)."""


class CountingReader(io.RawIOBase):
    """Counts the bytes read from the file: how far the import is, without reading ahead."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw, self.count = raw, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self.raw.readinto(buffer)  # type: ignore[attr-defined]
        self.count += n or 0
        return int(n or 0)


@dataclass
class Parsed:
    rows: Iterator[ImportRow | LineError]
    columns: list[str]
    delimiter: str


def _header_columns(names: list[str]) -> tuple[list[str | None], list[str]]:
    lookup = {alias: column for column, aliases in COLUMNS.items() for alias in aliases}
    columns = [lookup.get(" ".join(n.strip().lower().split())) for n in names]
    unknown = [n.strip() for n, c in zip(names, columns, strict=True) if c is None and n.strip()]
    return columns, unknown


def _sniff(header: str) -> str:
    """The delimiter that splits the header into the most known columns."""
    best, best_known = ";", -1
    for delimiter in DELIMITERS:
        names = next(csv.reader([header], delimiter=delimiter), [])
        known = sum(1 for c in _header_columns(names)[0] if c is not None)
        if known > best_known:
            best, best_known = delimiter, known
    return best


def parse(text: IO[str]) -> Parsed:
    """Rows of the file, one at a time: an ImportRow for a good line, a LineError for a bad one."""
    header = text.readline()
    if not header.strip():
        raise FileRefused("The file is empty: the first line must name the columns.")
    delimiter = _sniff(header)
    names = next(csv.reader([header], delimiter=delimiter))
    columns, unknown = _header_columns(names)
    if unknown:
        raise FileRefused(
            f"Unknown column(s) {', '.join(repr(u) for u in unknown)}: the columns are {', '.join(COLUMNS)}."
        )
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        raise FileRefused(f"The header line lacks the column(s) {', '.join(missing)}.")
    doubled = sorted({c for c in columns if c is not None and columns.count(c) > 1})
    if doubled:
        raise FileRefused(f"The column(s) {', '.join(doubled)} appear twice in the header line.")
    return Parsed(_rows(text, columns, delimiter), [c or "" for c in columns], delimiter)


def _rows(text: IO[str], columns: list[str | None], delimiter: str) -> Iterator[ImportRow | LineError]:
    reader = csv.reader(text, delimiter=delimiter, strict=True)
    end = 1  # the header's line
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield LineError(end + 1, "-", f"Not readable as CSV: {exc}.")
            end = reader.line_num + 1
            continue
        line, end = end + 1, reader.line_num + 1  # a quoted field may span lines: report the first
        if not fields or all(not f.strip() for f in fields):
            continue  # an empty line (spreadsheets write some at the end)
        if len(fields) != len(columns):
            yield LineError(line, "-", f"{len(fields)} fields where the header has {len(columns)}.")
            continue
        yield _row(line, {c: v for c, v in zip(columns, fields, strict=True) if c is not None})


def _row(line: int, values: dict[str, str]) -> ImportRow | LineError:
    from .http import MemberIn  # the same request model as POST /members: one input policy

    for column, value in values.items():
        if any(0xDC80 <= ord(ch) <= 0xDCFF for ch in value):  # surrogateescape: bytes that are not UTF-8
            return LineError(line, column, "Not UTF-8: save the file as CSV UTF-8.")
    kind = values.get("organisation_kind", "").strip()
    groups: list[tuple[str, str]] = []
    for item in (g.strip() for g in values.get("groups", "").split("|")):
        if not item:
            continue
        slug, _, role = item.partition(":")
        role = role.strip().lower() or "member"
        if role not in ROLES:
            return LineError(line, "groups", f"Role {role!r} (after the colon) must be one of {', '.join(ROLES)}.")
        groups.append((slug.strip(), role))
    if len(groups) > MAX_GROUPS:
        return LineError(line, "groups", f"At most {MAX_GROUPS} groups on a line.")
    consents = [c.strip() for c in values.get("consents", "").split("|") if c.strip()]
    body = {
        "name": values["name"],
        "email": values["email"].strip(),
        "phone": values.get("phone") or None,
        "organisation": {
            "name": values["organisation"],
            "kind": KINDS.get(" ".join(kind.lower().split()), kind),
            "cvr": values.get("cvr", "").strip() or None,
        },
        "job_title": values["job_title"],
        "locale": values.get("locale", "").strip().lower() or "da",
        "consents": consents,
    }
    try:
        member = MemberIn.model_validate(body)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"] if not isinstance(p, int) and "[" not in str(p))
        column = FIELD_COLUMN.get(where, where.split(".")[0] or "-")
        return LineError(line, column, error["msg"])
    for slug, _ in groups:
        if not slug or len(slug) > 100:
            return LineError(line, "groups", "A group's slug is 1 to 100 characters.")
    org = member.organisation
    return ImportRow(
        line=line,
        name=member.name,
        email=str(member.email).lower(),
        phone=member.phone,
        organisation_name=org.name,
        organisation_kind=org.kind.value,
        organisation_cvr=org.cvr,
        job_title=member.job_title,
        locale=member.locale.value,
        consents=tuple(c.value for c in member.consents),
        groups=tuple(groups),
    )


class Progress:
    """On stderr: a bar redrawn in place on a terminal, else a line at every tenth."""

    def __init__(self, total: int, stream: IO[str] | None = None) -> None:
        self.total = max(total, 1)
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.started = time.monotonic()
        self.shown = -1

    def show(self, done: int, lines: int, *, final: bool = False) -> None:
        share = min(done / self.total, 1.0)
        rate = lines / max(time.monotonic() - self.started, 1e-9)
        if self.tty:
            bar = "#" * int(share * 30)
            self.stream.write(f"\r[{bar:<30}] {share:6.1%}  {lines:,} lines  {rate:,.0f} lines/s")
            if final:
                self.stream.write("\n")
        elif int(share * 10) > self.shown:
            self.shown = int(share * 10)
            self.stream.write(f"import: {share:.0%} ({lines:,} lines, {rate:,.0f} lines/s)\n")
        self.stream.flush()


@dataclass
class Report:
    lines: int = 0
    registered: int = 0
    existing: int = 0
    joined: int = 0
    refused: int = 0
    seconds: float = 0.0

    def add(self, outcome: BatchOutcome) -> None:
        self.registered += outcome.registered
        self.existing += outcome.existing
        self.joined += outcome.joined


async def run_import(
    path: Path,
    *,
    settings: Settings,
    dry_run: bool = False,
    batch_size: int = 500,
    out: IO[str] | None = None,
    progress: IO[str] | None = None,
) -> Report:
    """Import `path`; errors are written to `out` as they are found (so they take no memory), the summary at
    the end. Raises FileRefused when the file as a whole cannot be read."""
    from netvaerk_shared.migrate import upgrade

    out = out or sys.stdout
    report = Report()
    # every member the handler registers comes from a line that passed MemberIn in _row (a line that fails it is
    # reported and never handed over): the units of work need not validate member.registered again
    runtime = bootstrap(settings, translate=to_contract_of_checked_input)
    started = time.monotonic()
    try:
        if settings.auto_migrate and runtime.migrations_dir is not None:
            await upgrade(runtime.engine, runtime.migrations_dir)
        with open(path, "rb") as raw:
            counter = CountingReader(raw)
            text = io.TextIOWrapper(
                io.BufferedReader(counter), encoding="utf-8-sig", errors="surrogateescape", newline=""
            )
            parsed = parse(text)
            started = time.monotonic()
            bar = Progress(os.fstat(raw.fileno()).st_size, progress)
            await import_rows(
                runtime,
                parsed.rows,
                dry_run=dry_run,
                batch_size=batch_size,
                report=report,
                refused=lambda error: _refused(out, error),
                progressed=lambda: bar.show(counter.count, report.lines),
            )
            bar.show(counter.count, report.lines, final=True)
    finally:
        await runtime.engine.dispose()
    report.seconds = time.monotonic() - started
    would = "would be " if dry_run else ""
    out.write(
        f"{report.lines:,} lines: {report.registered:,} members {would}registered, {report.existing:,} already "
        f"registered (left as they are), {report.joined:,} seats {would}taken, {report.refused:,} lines refused"
        f"{' (dry run: nothing was written)' if dry_run else ''}\n"
    )
    return report


async def import_rows(
    runtime: Any,
    rows: Iterator[ImportRow | LineError],
    *,
    dry_run: bool,
    batch_size: int,
    report: Report,
    refused: Callable[[LineError], None],
    progressed: Callable[[], None] = lambda: None,
) -> None:
    """Import the parsed rows in batches of up to `batch_size` good lines, counting into `report`; `refused` is told
    of each refused line (as it is found, so the errors take no memory here), `progressed` after each batch. The CLI
    and POST /admin/imports (imports_http.py) both import through this."""

    def take() -> list[ImportRow | LineError]:
        """The next lines, up to batch_size good ones, read and checked (run in a thread)."""
        items: list[ImportRow | LineError] = []
        good = 0
        for item in rows:
            items.append(item)
            if not isinstance(item, LineError):
                good += 1
                if good >= batch_size:
                    break
        return items

    def refuse(error: LineError) -> None:
        report.refused += 1
        refused(error)

    # The next batch's lines are read and checked in a thread while this batch is written: the CPU work of
    # the one overlaps the database's of the other. One reader at a time: a take() starts after the last.
    upcoming = asyncio.ensure_future(asyncio.to_thread(take))
    try:
        while items := await upcoming:
            upcoming = asyncio.ensure_future(asyncio.to_thread(take))
            batch: list[ImportRow] = []
            for item in items:
                report.lines += 1
                if isinstance(item, LineError):
                    refuse(item)
                else:
                    batch.append(item)
            if batch:
                outcome = await _batch(runtime, tuple(batch), dry_run)
                report.add(outcome)
                for error in outcome.errors:
                    refuse(error)
            progressed()
    finally:
        with contextlib.suppress(Exception):
            await upcoming  # the reader's thread, done before the file closes


def _refused(out: IO[str], error: LineError) -> None:
    out.write(f"line {error.line}: {error.field}: {error.reason}\n")


async def _batch(runtime: Any, rows: tuple[ImportRow, ...], dry_run: bool) -> BatchOutcome:
    if not dry_run:
        return await import_members(ImportMembers(rows), runtime.uow())
    async with runtime.engine.connect() as conn:
        transaction = await conn.begin()
        try:
            return await import_members(ImportMembers(rows, lock=False), runtime.uow_on(conn))
        finally:
            await transaction.rollback()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m members.entrypoints.cli", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    cmd = commands.add_parser("import", help="import members and their group seats from a CSV file")
    cmd.add_argument("file", type=Path)
    cmd.add_argument("--dry-run", action="store_true", help="check everything, write nothing")
    cmd.add_argument("--database-url", help="the members database (default: DATABASE_URL)")
    cmd.add_argument("--batch-size", type=int, default=500, help="lines per transaction (default 500)")
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        parser.error("--batch-size must be at least 1")
    overrides = {"database_url": args.database_url} if args.database_url else {}
    settings = Settings(**overrides)
    try:
        report = asyncio.run(run_import(args.file, settings=settings, dry_run=args.dry_run, batch_size=args.batch_size))
    except FileRefused as exc:
        print(f"{args.file}: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"{args.file}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    return 1 if report.refused else 0


if __name__ == "__main__":
    sys.exit(main())
