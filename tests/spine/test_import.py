"""File import: CSV (UTF-8 and GBK), JSON lines and Excel, column mapping, broken rows, re-import adds nothing."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from openpyxl import Workbook
from sqlalchemy import inspect
from typer.testing import CliRunner

from core.errors import SourceError
from flow.importer import FileImporter
from nlp.tokenize import segment
from storage import schema
from storage.sqlite import SqliteStore
from yuqing.cli import app
from yuqing.service import Service

HEADER = ["message_id", "user_id", "title", "created_at", "body", "dislikes", "likes"]
ROWS = [
    ["188006", "A000102948", "A3区一米阳光婚纱艺术摄影是否合法纳税了？", "2019-02-28 11:25:05",
     "\n\t\t\t座落在A市A3区联丰路米兰春天G2栋320，一家名叫一米阳光婚纱艺术摄影的影楼\n\t\t", "0", "0"],
    ["188007", "A00074795", "咨询A6区道路命名规划初步成果公示", "2019/2/14 20:00", "请问道路命名规划什么时候公示？", "0", "1"],
    ["188031", "A000100804", "反映A7县春华镇金鼎村水泥路、自来水到户的问题", "2019年7月19日 18:19",
     "金鼎村七里组的村民长期没有自来水，水泥路也没有修到户", "1", "3"],
]


def write_csv(path: Path, rows: list[list[str]], encoding: str = "utf-8") -> Path:
    with path.open("w", encoding=encoding, newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(HEADER)
        writer.writerows(rows)
    return path


def ingest_file(service: Service, path: Path):
    importer = FileImporter(path, "board_tipdm", service.config.sources["board_tipdm"].import_)
    return service.ingestor.ingest(importer.records())


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gbk"])
def test_csv_import_with_mapping_and_encodings(service: Service, tmp_path: Path, encoding: str) -> None:
    report = ingest_file(service, write_csv(tmp_path / "m.csv", ROWS, encoding))
    assert (report.received, report.stored, report.quarantined) == (3, 3, 0)
    item = service.store.get(report.item_ids[0])
    assert item.source_id == "188006" and item.author == "A000102948"
    assert item.title == "A3区一米阳光婚纱艺术摄影是否合法纳税了？"
    assert item.content.startswith("座落在A市A3区")
    assert item.published_at.isoformat() == "2019-02-28T11:25:05+08:00"
    again = ingest_file(service, write_csv(tmp_path / "m.csv", ROWS, encoding))
    assert (again.stored, again.unchanged) == (0, 3)
    assert service.store.stats().items == 3


def test_broken_csv_rows_are_quarantined(service: Service, tmp_path: Path) -> None:
    path = tmp_path / "broken.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(HEADER)
        writer.writerow(ROWS[0])
        writer.writerow(["1", "only three cells", "x"])
        writer.writerow(["2", "u", "标题", "不是时间", "内容", "0", "0"])
        writer.writerow(ROWS[1])
    report = ingest_file(service, path)
    assert (report.received, report.stored, report.quarantined) == (4, 2, 2)
    reasons = sorted(r.reason for r in service.store.list_quarantine().data)
    assert any("expected 7 columns, found 3" in r for r in reasons)
    assert any("unrecognised time format" in r for r in reasons)


def test_jsonl_import_and_reimport(service: Service, tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    lines = [json.dumps(dict(zip(HEADER, row, strict=True)), ensure_ascii=False) for row in ROWS]
    lines.insert(1, "{this is not json")
    lines.insert(2, "[1, 2, 3]")
    path.write_text("\n".join(lines) + "\n\n", encoding="utf-8")
    report = ingest_file(service, path)
    assert (report.stored, report.quarantined) == (3, 2)
    assert ingest_file(service, path).stored == 0


def test_xlsx_import_with_excel_dates(service: Service, tmp_path: Path) -> None:
    from datetime import datetime

    book = Workbook()
    sheet = book.active
    sheet.append(HEADER)
    for row in ROWS:
        sheet.append(row)
    sheet.append(["188099", "A1", "Excel 日期单元格", datetime(2019, 3, 1, 9, 30), "日期是 Excel 日期类型", 0, 5])
    path = tmp_path / "m.xlsx"
    book.save(path)
    report = ingest_file(service, path)
    assert (report.stored, report.quarantined) == (4, 0)
    excel_item = service.store.get(report.item_ids[-1])
    assert excel_item.published_at.isoformat() == "2019-03-01T09:30:00+08:00"
    assert excel_item.engagement.likes == 5
    assert ingest_file(service, path).stored == 0


def test_an_import_estimates_its_records_without_reading_the_file_through(tmp_path: Path) -> None:
    """`estimated_records` (the store chooses how to load by it): exact for a small file and an Excel sheet, within a
    tenth for a large one from its first MB (enough for a rule that compares it with the store)."""
    small = write_csv(tmp_path / "small.csv", ROWS[1:])
    assert FileImporter(small, "board_tipdm").estimated_records() == 2
    big = tmp_path / "big.jsonl"
    rows = [json.dumps({"message_id": str(n), "title": "反映" * (n % 40), "body": "停水" * (n % 300)}, ensure_ascii=False)
            for n in range(20_000)]
    big.write_text("\n".join(rows) + "\n", encoding="utf-8")
    assert big.stat().st_size > 3 << 20
    assert abs(FileImporter(big, "board_tipdm").estimated_records() - 20_000) < 2_000
    book = Workbook()
    for row in [HEADER, *ROWS]:
        book.active.append(row)
    book.save(tmp_path / "m.xlsx")
    assert FileImporter(tmp_path / "m.xlsx", "board_tipdm").estimated_records() == 3


def test_unsupported_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="not found"):
        FileImporter(tmp_path / "none.csv", "s")
    (tmp_path / "x.pdf").write_bytes(b"%PDF")
    with pytest.raises(SourceError, match="unsupported file type"):
        FileImporter(tmp_path / "x.pdf", "s")
    (tmp_path / "bad.xlsx").write_bytes(b"not a zip")
    with pytest.raises(SourceError, match="not a readable Excel workbook"):
        list(FileImporter(tmp_path / "bad.xlsx", "s").records())


def test_import_command_end_to_end(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        f"storage: {{sqlite_path: {tmp_path / 'cli.db'}}}\n"
        "sources:\n  board_tipdm:\n    channel: board\n    import:\n      columns: {message_id: source_id, title: title,"
        " created_at: published_at, body: content, likes: likes, dislikes: dislikes, user_id: author}\n",
        encoding="utf-8",
    )
    data = write_csv(tmp_path / "m.csv", ROWS)
    runner = CliRunner()
    first = runner.invoke(app, ["import", str(data), "--source", "board_tipdm", "-c", str(config)])
    assert first.exit_code == 0, first.output
    summary = json.loads(first.stdout.strip().splitlines()[-1])
    assert summary["stored"] == 3
    assert summary["indexes_deferred"] == 16  # into an empty store: the feed indexes built at the end
    store = SqliteStore(tmp_path / "cli.db", segment=segment)
    imported = [i for batch in store.scan_items(datetime(2000, 1, 1, tzinfo=UTC), datetime.now(UTC)) for i in batch]
    assert len(imported) == 3 and all(i.extra["backfill"] is True for i in imported)  # history: never alerted on
    with store.read() as conn:
        assert {index["name"] for index in inspect(conn).get_indexes("items")} == {i.name for i in schema.items.indexes}
    second = runner.invoke(app, ["import", str(data), "--source", "board_tipdm", "-c", str(config)])
    summary = json.loads(second.stdout.strip().splitlines()[-1])
    assert summary["stored"] == 0
    unknown = runner.invoke(app, ["import", str(data), "--source", "nope", "-c", str(config)])
    assert unknown.exit_code == 2 and "unknown source" in unknown.output


@pytest.mark.data
def test_real_hot_issue_file_imports_completely(service: Service, shared_data: Path) -> None:
    path = shared_data / "tipdm2020c_hot_issue_messages" / "messages.csv"
    report = ingest_file(service, path)
    assert report.received == 4326
    assert report.quarantined == 0
    # 55 messages repeat another's words under their own message id: items of their own (linked as near-duplicates).
    assert (report.stored, report.duplicates) == (4326, 0)


def _cli_config(tmp_path: Path, batch_size: int) -> Path:
    config = tmp_path / "c.yaml"
    config.write_text(
        f"storage: {{sqlite_path: {tmp_path / 'cli.db'}}}\n"
        f"ingest: {{batch_size: {batch_size}, workers: 2}}\n"
        "sources:\n  board_tipdm:\n    channel: board\n    import:\n      columns: {message_id: source_id, title: title,"
        " created_at: published_at, body: content, likes: likes, dislikes: dislikes, user_id: author}\n",
        encoding="utf-8",
    )
    return config


def _rows(count: int) -> list[list[str]]:
    return [[f"9{n:05d}", f"U{n}", f"{ROWS[n % 3][2]}（{n}）", ROWS[n % 3][3], f"{ROWS[n % 3][4]}第{n}号", "0", str(n)]
            for n in range(count)]


def test_import_command_hands_every_batch_to_the_pool_started_before_the_writer(tmp_path: Path) -> None:
    """The pool starts, and takes the first batches, before the writer's service is built: none is left for the
    writer to enrich itself while the workers load."""
    config = _cli_config(tmp_path, batch_size=3)
    done = CliRunner().invoke(app, ["import", str(write_csv(tmp_path / "m.csv", _rows(16))), "--source", "board_tipdm",
                                    "-c", str(config)])
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert (report["received"], report["stored"], report["batches_enriched_by_workers"]) == (16, 16, 6)
    store = SqliteStore(tmp_path / "cli.db", segment=segment)
    assert store.stats().items == 16


def test_import_command_has_the_workers_read_a_json_lines_file(tmp_path: Path) -> None:
    """A JSON-lines export goes to the pool as ranges of lines the workers read themselves (flow.importer.LineBlock):
    every record stored and marked as history, a line that is none quarantined with its number, blank ones skipped."""
    config = _cli_config(tmp_path, batch_size=3)
    lines = [json.dumps(dict(zip(HEADER, row, strict=True)), ensure_ascii=False) for row in _rows(16)]
    lines[4:4] = ["", "{broken"]
    path = tmp_path / "m.jsonl"
    path.write_bytes("\r\n".join(lines).encode())  # Windows line ends, none after the last line
    done = CliRunner().invoke(app, ["import", str(path), "--source", "board_tipdm", "-c", str(config)])
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert (report["received"], report["stored"], report["quarantined"]) == (17, 16, 1)
    assert report["batches_enriched_by_workers"] == 6  # 18 lines, 3 a batch
    store = SqliteStore(tmp_path / "cli.db", segment=segment)
    imported = [i for batch in store.scan_items(datetime(2000, 1, 1, tzinfo=UTC), datetime.now(UTC)) for i in batch]
    assert len(imported) == 16 and all(i.extra["backfill"] is True for i in imported)
    [rejected] = store.list_quarantine().data
    assert rejected.reason.startswith("line 6: invalid JSON") and rejected.payload == "{broken\n"
    assert rejected.origin == str(path)


def test_import_command_stops_its_pool_when_the_service_cannot_start(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import multiprocessing

    import yuqing.service
    from core.errors import ConfigError

    def broken(config, **options):  # noqa: ANN001, ANN003, ANN202
        raise ConfigError("storage: the database cannot be opened")

    monkeypatch.setattr(yuqing.service, "build_service", broken)
    config = _cli_config(tmp_path, batch_size=3)
    done = CliRunner().invoke(app, ["import", str(write_csv(tmp_path / "m.csv", _rows(16))), "--source", "board_tipdm",
                                    "-c", str(config)])
    assert done.exit_code == 2 and "cannot be opened" in done.output
    assert multiprocessing.active_children() == []  # the workers started for it are gone
