"""JSON-lines imports read by the pool workers (flow/importer.py `LineBlock`, flow/pool.py `enrich_block`): the
importing process only cuts the file into byte ranges of whole lines, and what is stored and quarantined is what
reading the file on the importing process gives."""

from __future__ import annotations

import codecs
import csv
import json
import sqlite3
from pathlib import Path

import pytest

from core.config import ImportSpec
from core.models import QuarantineRecord, RawRecord
from flow.importer import FileImporter, LineBlock, detect_encoding
from flow.pool import import_batches
from tests.helpers.pooled import canonical, open_service, stored
from yuqing.host import Service
from yuqing.service import pooled_stages

SOURCE = "board_tipdm"
BACKFILL = {"backfill": True}


def read(records: list) -> list[tuple]:
    """What a reader gave, comparable: records and quarantined lines with their payloads, origins and reasons."""
    return [(type(r).__name__, r.source, r.payload, r.origin, getattr(r, "reason", None)) for r in records]


def tricky_lines(texts: list[str]) -> list[str]:
    """JSON lines of `texts` with what a reader must cope with: blank and whitespace-only lines, invalid JSON, lines
    that are JSON but no object, long multi-byte lines."""
    lines = []
    for n, text in enumerate(texts):
        lines.append(json.dumps({"message_id": f"m-{n}", "body": text, "likes": n}, ensure_ascii=False))
        if n % 17 == 3:
            lines.append("")
        if n % 23 == 5:
            lines.append("  \t ")
        if n % 29 == 7:
            lines.append('{"message_id": "broken", "body": "未闭合')
        if n % 31 == 11:
            lines.append('["不是", "对象"]')
        if n % 37 == 13:
            lines.append(json.dumps({"message_id": f"long-{n}", "body": "长文本" * 3000}, ensure_ascii=False))
    return lines


def write_lines(path: Path, lines: list[str], *, encoding: str = "utf-8", ends: tuple[str, ...] = ("\n",),
                bom: bool = False) -> Path:
    """The lines with line ends taken in turn from `ends`, the last one without any."""
    text = "".join(line + ends[n % len(ends)] for n, line in enumerate(lines[:-1])) + lines[-1]
    path.write_bytes((codecs.BOM_UTF8 if bom else b"") + text.encode(encoding))
    return path


TEXTS = [f"第{n}号 小区噪音扰民，道路积水严重，€ ü 🚧 请尽快处理" * (1 + n % 5) for n in range(400)]
FILES = {  # name: how the file is written
    "utf8": {},
    "crlf": {"ends": ("\r\n",)},
    "mixed_ends": {"ends": ("\n", "\r\n", "\r")},  # a lone carriage return ends a line as reading text counts it
    "gb18030": {"encoding": "gb18030"},
    "bom": {"bom": True},
}


@pytest.mark.parametrize("name", sorted(FILES))
@pytest.mark.parametrize("size", [1, 7, 150, 10_000])
def test_line_blocks_read_what_the_file_reader_reads(tmp_path: Path, name: str, size: int) -> None:
    path = write_lines(tmp_path / f"{name}.jsonl", tricky_lines(TEXTS), **FILES[name])
    importer = FileImporter(path, SOURCE, stamp=BACKFILL)
    whole = importer.records()
    blocks = list(importer.batches(size))
    assert all(isinstance(block, LineBlock) for block in blocks)
    expected = read(list(whole))
    assert read([r for block in blocks for r in block.read()]) == expected
    assert {r[0] for r in expected} == {"RawRecord", "QuarantineRecord"}
    assert all(r[2]["backfill"] for r in expected if r[0] == "RawRecord")
    reasons = [r[4] for r in expected if r[0] == "QuarantineRecord"]
    assert any("invalid JSON" in r for r in reasons) and any("must be an object" in r for r in reasons)
    data = path.read_bytes()
    for block in blocks[:-1]:  # cut after a line feed only: every block decodes alone, no character split
        assert data[block.offset + block.length - 1:block.offset + block.length] == b"\n"
        data[block.offset:block.offset + block.length].decode(FILES[name].get("encoding", "utf-8-sig"))
    with path.open(encoding=detect_encoding(path)) as fh:
        assert sum(len(block) for block in blocks) == len(fh.readlines())  # every line, blank ones too


def test_blocks_cross_the_reads_of_the_file_mid_character(tmp_path: Path) -> None:
    """Lines longer than the 1 MB the cutter reads at a time, of three-byte characters: reads end mid-character,
    blocks never do."""
    lines = [json.dumps({"message_id": str(n), "body": "噪" * (400_000 + n)}, ensure_ascii=False) for n in range(6)]
    path = write_lines(tmp_path / "big.jsonl", lines)
    importer = FileImporter(path, SOURCE)
    blocks = list(importer.batches(2))
    assert [block.first_line for block in blocks] == [1, 3, 5]
    records = [r for block in blocks for r in block.read()]
    assert read(records) == read(list(importer.records()))
    assert all(isinstance(r, RawRecord) and "\ufffd" not in r.payload["body"] for r in records)


def test_other_files_and_encodings_stay_lists_of_records(tmp_path: Path) -> None:
    lines = [json.dumps({"message_id": str(n), "body": "正文"}, ensure_ascii=False) for n in range(5)]
    utf16 = FileImporter(write_lines(tmp_path / "u16.jsonl", lines, encoding="utf-16"), SOURCE,
                         ImportSpec(encoding="utf-16"))
    batches = list(utf16.batches(2))  # a line feed byte is half of a UTF-16 character: read as text
    assert all(isinstance(b, list) for b in batches) and sum(map(len, batches)) == 5
    with (tmp_path / "rows.csv").open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows([["message_id", "body"], *[[str(n), "正文"] for n in range(5)]])
    batches = list(FileImporter(tmp_path / "rows.csv", SOURCE, stamp=BACKFILL).batches(2))
    assert [len(b) for b in batches] == [2, 2, 1] and all(r.payload["backfill"] for b in batches for r in b)


# ---- through the pool ----------------------------------------------------------------------------------------


def real_lines(shared_data: Path, rows: int = 700) -> list[str]:
    """Real 泰迪杯 posts as JSON lines (re-posts under new ids among them), with blank lines, invalid JSON and
    non-object lines, and a row that cannot become an item (no text)."""
    with (shared_data / "tipdm2020c_hot_issue_messages" / "messages.csv").open(encoding="utf-8") as fh:
        real = [row for _, row in zip(range(rows), csv.DictReader(fh), strict=False)]
    real += [{**row, "message_id": f"repost-{n}"} for n, row in enumerate(real[::40])]
    real.append({**real[21], "message_id": "no-text", "title": "", "body": "  "})
    lines = []
    for n, row in enumerate(real):
        lines.append(json.dumps(row, ensure_ascii=False))
        if n % 97 == 5:
            lines += ["", "   "]
        if n % 131 == 7:
            lines.append('{"message_id": "broken", "body": "未闭合')
        if n % 163 == 9:
            lines.append("[1, 2]")
    return lines


def import_file(service: Service, path: Path, workers: int, *, blocks: bool = True, serial_start: bool = False
                ) -> tuple[dict, int, list[int]]:
    """The report, how many batches the workers enriched and what `done` was told; `blocks`: as `yuqing import`
    reads a JSON-lines file (`FileImporter.batches`), else as lists of records read on this process."""
    importer = FileImporter(path, SOURCE, service.config.sources[SOURCE].import_, stamp=BACKFILL)
    size = service.config.ingest.batch_size
    if blocks:
        batches = list(importer.batches(size))
        assert all(isinstance(b, LineBlock) for b in batches)
    else:
        records = list(importer.records())
        batches = [records[i:i + size] for i in range(0, len(records), size)]
    told: list[int] = []
    report, pooled = import_batches(service.writer, service.config, batches, workers, pooled_stages, told.append,
                                    serial_start=serial_start)
    return report.model_dump(), pooled, told


def quarantine(service: Service) -> list[tuple]:
    """The quarantine as stored, in order. Read from the table: `list_quarantine` cannot list the text of a line that
    is JSON but no object (it decodes it, and a list is no payload)."""
    with sqlite3.connect(service.config.storage.sqlite_path) as conn:
        return conn.execute("SELECT stage, reason, payload, origin, source, times_seen FROM quarantine ORDER BY id"
                            ).fetchall()


def blank_bodies(path: Path, count: int) -> Path:
    """The file again with the body of its first `count` records lost (exact dedup puts the stored one back and
    quarantines the event with the record's payload and origin: the writer reads those from the file again)."""
    lines = path.read_text(encoding="utf-8").split("\n")
    blanked = 0
    for n, line in enumerate(lines):
        if blanked < count and line.startswith('{"message_id"') and line.endswith("}"):
            row = json.loads(line)
            if row.get("body", "").strip() and row.get("title", "").strip():
                lines[n] = json.dumps({**row, "body": "", "likes": str(int(row["likes"] or 0) + 1)},
                                      ensure_ascii=False)
                blanked += 1
    out = path.with_name("blanked.jsonl")
    out.write_text("\n".join(lines), encoding="utf-8")
    return out


@pytest.mark.data
@pytest.mark.parametrize("encoding", ["utf-8", "gb18030"])
def test_workers_reading_the_file_store_and_quarantine_what_the_writer_reading_it_does(
        shared_data: Path, tmp_path: Path, encoding: str) -> None:
    lines = real_lines(shared_data)
    path = write_lines(tmp_path / "export.jsonl", lines, encoding=encoding, ends=("\n", "\n", "\r\n"))
    assert detect_encoding(path) == encoding  # detected, not declared
    blocks = -(-len(lines) // 150)
    services = {name: open_service(tmp_path, name) for name in ("lists", "serial", "pooled", "started")}
    try:
        one = import_file(services["lists"], path, 1, blocks=False)
        runs = {"serial": import_file(services["serial"], path, 1),
                "pooled": import_file(services["pooled"], path, 2),
                "started": import_file(services["started"], path, 2, serial_start=True)}
        assert runs["pooled"][1] == blocks and runs["serial"][1] == 0  # every block enriched by the workers
        report = one[0]
        # 6 lines of invalid JSON, 5 that are no object, the record without text
        assert report["received"] == len([line for line in lines if line.strip()]) and report["quarantined"] == 12
        assert sum(one[2]) == report["received"]
        expected_items, expected_quarantine = canonical(stored(services["lists"])), quarantine(services["lists"])
        assert len(expected_quarantine) == 12 and sum(q[0] == "import" for q in expected_quarantine) == 11
        assert sum(q[1].startswith("line ") and "invalid JSON" in q[1] for q in expected_quarantine) == 6
        for name, (got, _, told) in runs.items():
            assert got == report, name
            assert sum(told) == report["received"], name  # progress: the records read, blank lines not
            assert canonical(stored(services[name])) == expected_items, name
            assert quarantine(services[name]) == expected_quarantine, name
        # Stored bodies kept by exact dedup: its quarantine records carry the payload and origin of the file's line
        # (read again from the file by the writer), as when the writer read the lines itself
        if encoding == "utf-8":
            again = blank_bodies(path, 25)
            one = import_file(services["lists"], again, 1, blocks=False)
            two = import_file(services["pooled"], again, 2)
            assert one[0] == two[0] and one[0]["updated"] >= 20
            kept = quarantine(services["lists"])
            assert sum(q[0] == "dedup:kept_stored" for q in kept) >= 20
            assert quarantine(services["pooled"]) == kept
            assert canonical(stored(services["pooled"])) == canonical(stored(services["lists"]))
    finally:
        for service in services.values():
            service.close()


def test_a_quarantine_record_of_a_block_keeps_its_line(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "q.jsonl", ["", '{"a": 1}', "oops", "[1]", '{"b": 2}'], ends=("\r\n",))
    records = [r for block in FileImporter(path, SOURCE).batches(2) for r in block.read()]
    rejected = [(r.reason, r.payload, r.origin) for r in records if isinstance(r, QuarantineRecord)]
    assert [r[0].split(":")[0] for r in rejected] == ["line 3", "line 4"]
    assert [r[1] for r in rejected] == ["oops\n", "[1]\n"] and {r[2] for r in rejected} == {str(path)}
    assert [r.origin for r in records if isinstance(r, RawRecord)] == ["q.jsonl:2", "q.jsonl:5"]
