"""Read file exports (CSV, JSON lines, Excel) into raw records using a source's column mapping.

Broken rows do not stop the import: each becomes a quarantine record with its line number and reason.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from charset_normalizer import from_bytes

from core.config import ImportSpec
from core.errors import SourceError
from core.models import QuarantineRecord, RawRecord

FORMATS = {".csv": "csv", ".tsv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".xlsx": "xlsx"}
csv.field_size_limit(50_000_000)


def detect_encoding(path: Path, declared: str | None = None) -> str:
    """UTF-8 (with or without BOM) when it decodes; otherwise the best guess, preferring GB18030 for Chinese."""
    if declared:
        return declared
    head = path.read_bytes()[:200_000]
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    try:
        head.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError as exc:
        if exc.start > len(head) - 4:  # cut in the middle of a multi-byte character at the sample's end
            return "utf-8"
    guess = from_bytes(head).best()
    name = (guess.encoding if guess else "gb18030").lower()
    # GBK and GB2312 are subsets of GB18030; decoding with the superset never loses characters.
    return "gb18030" if name in ("gbk", "gb2312", "gb18030", "cp936", "big5") or not guess else name


class FileImporter:
    """Turns one file into RawRecords for `source`, mapping columns as the source's import spec says."""

    def __init__(self, path: Path | str, source: str, spec: ImportSpec | None = None) -> None:
        self.path = Path(path)
        self.source = source
        self.spec = spec or ImportSpec()
        if not self.path.is_file():
            raise SourceError(f"file not found: {self.path}")
        suffix = self.path.suffix.lower()
        if suffix not in FORMATS:
            raise SourceError(f"unsupported file type {suffix!r}; use one of {', '.join(sorted(FORMATS))}")
        self.format = FORMATS[suffix]
        self.total: int | None = None

    def _map(self, row: dict[str, Any]) -> dict[str, Any]:
        if not self.spec.columns:
            return {str(k).strip(): v for k, v in row.items() if k is not None}
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
        return payload

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
            for number, line in enumerate(fh, start=1):
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
                yield RawRecord(source=self.source, payload=self._map(row), origin=f"{self.path.name}:{number}")

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
