"""Read file exports (CSV, JSON lines, Excel) into raw records using a source's column mapping.

Broken rows do not stop the import: each becomes a quarantine record with its line number and reason.

A JSON-lines file can also be cut into byte ranges of whole lines (`FileImporter.batches`, `LineBlock`) that an
import's pool workers read and parse themselves: the importing process is the one that limits an import, and
parsing 50,000 lines and pickling the records to the workers took ≈ 3 s of its CPU.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any

from core.config import ImportSpec
from core.errors import SourceError
from core.models import QuarantineRecord, RawRecord, built_as_validated

_RECORD_GIVEN = ("source", "payload", "origin")  # in field order (`built_as_validated`)
FORMATS = {".csv": "csv", ".tsv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".xlsx": "xlsx"}
csv.field_size_limit(50_000_000)


def detect_encoding(path: Path, declared: str | None = None) -> str:
    """UTF-8 (with or without BOM) when it decodes; otherwise the best guess, preferring GB18030 for Chinese."""
    if declared:
        return declared
    with path.open("rb") as fh:
        head = fh.read(200_000)
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    try:
        head.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError as exc:
        if exc.start > len(head) - 4:  # cut in the middle of a multi-byte character at the sample's end
            return "utf-8"
    from charset_normalizer import from_bytes  # imported here: a pool worker reading a LineBlock does not need it

    guess = from_bytes(head).best()
    name = (guess.encoding if guess else "gb18030").lower()
    # GBK and GB2312 are subsets of GB18030; decoding with the superset never loses characters.
    return "gb18030" if name in ("gbk", "gb2312", "gb18030", "cp936", "big5") or not guess else name


# Encodings whose decoder keeps state from one line to the next: a byte range of lines cannot be decoded alone.
_STATEFUL = ("utf_16", "utf_32", "utf_7", "iso2022", "hz")


def _splits_at_newline_bytes(encoding: str) -> bool:
    """Whether every line-feed and carriage-return byte of text in `encoding` ends a line (is never part of another
    character) and a range of whole lines decodes alone: ASCII-compatible encodings such as UTF-8 and GB18030, not
    UTF-16."""
    name = codecs.lookup(encoding).name
    if name == "utf-8-sig":  # UTF-8 after a byte order mark (which `_line_blocks` skips)
        return True
    return "\r\n".encode(encoding) == b"\r\n" and not name.replace("-", "_").startswith(_STATEFUL)


class FileImporter:
    """Turns one file into RawRecords for `source`, mapping columns as the source's import spec says. `stamp`:
    fields every record's payload gets besides its columns (`yuqing import` marks history as backfill)."""

    def __init__(self, path: Path | str, source: str, spec: ImportSpec | None = None,
                 stamp: dict[str, Any] | None = None) -> None:
        self.path = Path(path)
        self.source = source
        self.spec = spec or ImportSpec()
        self.stamp = stamp or {}
        if not self.path.is_file():
            raise SourceError(f"file not found: {self.path}")
        suffix = self.path.suffix.lower()
        if suffix not in FORMATS:
            raise SourceError(f"unsupported file type {suffix!r}; use one of {', '.join(sorted(FORMATS))}")
        self.format = FORMATS[suffix]
        self.total: int | None = None
        self._plain = (type(source) is str and all(type(key) is str for key in self.stamp)
                       and all(type(target) is str for target in self.spec.columns.values()))

    def _map(self, row: dict[str, Any]) -> dict[str, Any]:
        if not self.spec.columns:
            payload = {str(k).strip(): v for k, v in row.items() if k is not None}
            payload.update(self.stamp)
            return payload
        payload: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for key, value in row.items():
            if key is None:
                continue
            target = self.spec.columns.get(str(key).strip())
            if target:
                payload[target] = value
            elif value not in (None, ""):
                extra[str(key).strip()] = value
        if extra:
            payload["extra"] = extra
        payload.update(self.stamp)
        return payload

    def _record(self, payload: dict[str, Any], origin: str) -> RawRecord:
        """A record of a mapped row, made without validation when validation would keep it as it is (a str source,
        and payload keys that are JSON's, the stamp's and the columns' targets, all str: `_plain`), as a pool worker
        reading a JSON-lines block makes one per line (validating cost ~10,000 instructions a record)."""
        if self._plain:
            return built_as_validated(RawRecord, {"source": self.source, "payload": payload, "origin": origin},
                                      _RECORD_GIVEN)
        return RawRecord(source=self.source, payload=payload, origin=origin)

    def _reject(self, where: str, reason: str, raw: Any) -> QuarantineRecord:
        return QuarantineRecord(source=self.source, stage="import", reason=f"{where}: {reason}",
                                payload=raw if isinstance(raw, dict | str) else str(raw),
                                origin=str(self.path), created_at=datetime.now(UTC))

    def estimated_records(self) -> int:
        """About how many records the file holds, without reading it through (to choose how to store them, see
        `Store.bulk_load`): an Excel sheet says; a text file's size over the bytes per line of its first MB (a CSV
        cell running over several lines makes it a little high). Once reading has begun, an Excel sheet's count is
        known (`total`), and its workbook is not opened a second time."""
        if self.total is not None:
            return self.total
        if self.format == "xlsx":
            book, sheet = self._sheet()
            try:
                return max((sheet.max_row or 1) - 1, 0)
            finally:
                book.close()
        sample_size = 1 << 20
        with self.path.open("rb") as fh:
            sample = fh.read(sample_size)
        lines = sample.count(b"\n") + (not sample.endswith(b"\n") and bool(sample))
        header = 1 if self.format == "csv" else 0
        if len(sample) < sample_size:
            return max(lines - header, 0)
        return round(self.path.stat().st_size * lines / len(sample)) - header

    def records(self) -> Iterator[RawRecord | QuarantineRecord]:
        reader = {"csv": self._csv, "jsonl": self._jsonl, "xlsx": self._xlsx}[self.format]
        yield from reader()

    def batches(self, size: int) -> Iterator[list[RawRecord | QuarantineRecord] | LineBlock]:
        """The file in batches of about `size` records: a JSON-lines file (in an encoding whose line ends are single
        bytes) as `LineBlock`s of `size` lines, which whoever ingests them reads (an import's pool worker, or the
        importing process itself); other files as lists of records."""
        encoding = detect_encoding(self.path, self.spec.encoding) if self.format == "jsonl" else None
        if encoding is not None and _splits_at_newline_bytes(encoding):
            return self._line_blocks(encoding, size)
        return chunks(self.records(), size)

    def _line_blocks(self, encoding: str, size: int) -> Iterator[LineBlock]:
        """Byte ranges of `size` lines each (the last one shorter), cut only after a line-feed byte, so that no
        character is split; each with the number of its first line, counted as reading the file as text counts them
        (a lone carriage return ends a line too). A UTF-8 byte order mark is skipped, as utf-8-sig skips it."""
        chunk_size = 1 << 20
        with self.path.open("rb") as fh:
            buffer = fh.read(chunk_size)
            offset = 0
            if codecs.lookup(encoding).name == "utf-8-sig":
                encoding = "utf-8"
                if buffer.startswith(codecs.BOM_UTF8):
                    buffer, offset = buffer[len(codecs.BOM_UTF8):], len(codecs.BOM_UTF8)
            number = 1
            while buffer:
                cut, lines = _after_lines(buffer, size), size
                while cut < 0:
                    more = fh.read(chunk_size)
                    if not more:  # the last lines
                        cut, lines = len(buffer), buffer.count(b"\n")
                        break
                    buffer += more
                    cut = _after_lines(buffer, size)
                if buffer.find(b"\r", 0, cut) >= 0:  # (a search, not two counts, for a file of line feeds)
                    lines += buffer.count(b"\r", 0, cut) - buffer.count(b"\r\n", 0, cut)
                yield LineBlock(self, encoding, offset, cut, number, lines + (buffer[cut - 1:cut] not in b"\r\n"))
                number += lines
                offset += cut
                buffer = buffer[cut:]
                if len(buffer) < chunk_size:
                    buffer += fh.read(chunk_size)

    def _csv(self) -> Iterator[RawRecord | QuarantineRecord]:
        encoding = detect_encoding(self.path, self.spec.encoding)
        text = io.TextIOWrapper(self.path.open("rb"), encoding=encoding, errors="replace", newline="")
        delimiter = "\t" if self.path.suffix.lower() == ".tsv" else ","
        with text:
            reader = csv.reader(text, delimiter=delimiter)
            try:
                header = [h.strip() for h in next(reader)]
            except StopIteration:
                return
            except csv.Error as exc:
                raise SourceError(f"{self.path}: cannot read the CSV header: {exc}") from exc
            while True:
                line = reader.line_num + 1
                try:
                    row = next(reader)
                except StopIteration:
                    return
                except csv.Error as exc:
                    yield self._reject(f"line {line}", f"malformed CSV: {exc}", "")
                    continue
                if not any(cell.strip() for cell in row):
                    continue
                if len(row) != len(header):
                    yield self._reject(f"line {line}", f"expected {len(header)} columns, found {len(row)}",
                                       dict(zip(header, row, strict=False)) | {"_cells": row})
                    continue
                yield RawRecord(source=self.source, payload=self._map(dict(zip(header, row, strict=True))),
                                origin=f"{self.path.name}:{line}")

    def _jsonl(self) -> Iterator[RawRecord | QuarantineRecord]:
        encoding = detect_encoding(self.path, self.spec.encoding)
        with self.path.open(encoding=encoding, errors="replace") as fh:
            yield from self.json_lines(fh, 1)

    def json_lines(self, lines: Iterable[str], first: int) -> Iterator[RawRecord | QuarantineRecord]:
        """Records of JSON lines numbered from `first` (lines as a text file yields them): blank lines skipped, a
        line that is not a JSON object quarantined with its number. Both readers of JSON lines call it: `_jsonl`
        on the whole file, `LineBlock.read` on a range of it."""
        name = self.path.name  # (a property: once, not per line)
        for number, line in enumerate(lines, start=first):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                yield self._reject(f"line {number}", f"invalid JSON: {exc}", line[:10_000])
                continue
            if not isinstance(row, dict):
                yield self._reject(f"line {number}", "a JSON line must be an object", line[:10_000])
                continue
            yield self._record(self._map(row), f"{name}:{number}")

    def _sheet(self) -> tuple[Any, Any]:
        """The workbook, opened to read, and the sheet the import reads."""
        from openpyxl import load_workbook  # imported here: only Excel imports pay for it

        try:
            book = load_workbook(self.path, read_only=True, data_only=True)
        except Exception as exc:  # noqa: BLE001 - openpyxl raises many unrelated types for a broken file
            raise SourceError(f"{self.path}: not a readable Excel workbook: {exc}") from exc
        try:
            return book, book[self.spec.sheet] if self.spec.sheet else book.worksheets[0]
        except KeyError:
            book.close()
            raise SourceError(f"{self.path}: no sheet named {self.spec.sheet!r}; sheets: {book.sheetnames}") from None

    def _xlsx(self) -> Iterator[RawRecord | QuarantineRecord]:
        book, sheet = self._sheet()
        self.total = max((sheet.max_row or 1) - 1, 0)
        rows = sheet.iter_rows(values_only=True)
        try:
            header = [str(h).strip() if h is not None else "" for h in next(rows)]
        except StopIteration:
            return
        for number, row in enumerate(rows, start=2):
            if row is None or all(v in (None, "") for v in row):
                continue
            values = {h: v for h, v in zip(header, row, strict=False) if h}
            yield RawRecord(source=self.source, payload=self._map(values), origin=f"{self.path.name}:{number}")
        book.close()


def chunks(records: Iterable, size: int) -> Iterator[list]:
    """`records` in lists of `size` (the last one shorter): the batches an ingest runs."""
    it = iter(records)
    while chunk := list(islice(it, size)):
        yield chunk


def _after_lines(data: bytes, count: int) -> int:
    """The position just after the `count`-th line-feed byte of `data`, or -1 when it has fewer. (`find` line by
    line: `bytes.count` is a slower scan than `find`'s memchr.)"""
    end = 0
    for _ in range(count):
        end = data.find(b"\n", end) + 1
        if not end:
            return -1
    return end


@dataclass(frozen=True)
class LineBlock:
    """Whole lines of a JSON-lines file: `length` bytes from `offset`, the first of them line `first_line`. What an
    import sends a pool worker in place of the records (path, range and spec: a few hundred bytes to pickle, not
    ≈ 1 kB of parsed payload a line), and what the worker reads itself (`read`), so that the importing process,
    which limits the import, neither parses the lines nor pickles their records. A batch the importing process
    ingests itself is read there. Its `len` is its number of lines, blank ones too: about how many records it holds
    before it is read."""

    importer: FileImporter
    encoding: str
    offset: int
    length: int
    first_line: int
    lines: int

    def __len__(self) -> int:
        return self.lines

    @property
    def source(self) -> str:
        return self.importer.source

    def read(self) -> list[RawRecord | QuarantineRecord]:
        """The block's records and quarantined lines, as `FileImporter.records` gives them for these lines."""
        with self.importer.path.open("rb") as fh:
            fh.seek(self.offset)
            data = fh.read(self.length)
        text = io.StringIO(data.decode(self.encoding, errors="replace"), newline=None)  # line ends as a text file's
        return list(self.importer.json_lines(text, self.first_line))
