"""Items and records built without validation (`core.models.built_as_validated`, used by `flow.intake` and
`flow.importer` when validation would keep every value as given) are the models validation builds, and the models'
validation surface is pinned: a constraint or validator added to them must be mirrored in `_valid_as_given`."""

from __future__ import annotations

import pickle
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from core.config import load_config
from core.models import Engagement, Item, RawRecord, built_as_validated
from flow import intake
from flow.importer import FileImporter
from flow.intake import NormaliseStage, RejectedInput

REPO = Path(__file__).resolve().parents[2]


def validation_surface(model: type[BaseModel]) -> dict[str, Any]:
    """What pydantic checks of `model`: each field's type and constraints, its validators, its config's extra."""
    decorators = model.__pydantic_decorators__
    return {
        "fields": {name: (repr(field.annotation), [repr(m) for m in field.metadata])
                   for name, field in model.model_fields.items()},
        "validators": sorted((name, tuple(d.info.fields)) for name, d in decorators.field_validators.items()),
        "model_validators": sorted(decorators.model_validators),
        "extra": model.model_config.get("extra"),
    }


def test_the_models_checked_by_valid_as_given_have_not_changed() -> None:
    """If this fails, a model's validation changed: update `flow.intake._valid_as_given` (Item, Engagement) and
    `flow.importer.FileImporter._record` (RawRecord) to check the same, then this snapshot."""
    assert validation_surface(Item)["validators"] == [("_aware", ("published_at", "fetched_at"))]
    assert validation_surface(Item)["model_validators"] == []
    assert validation_surface(Item)["extra"] == "forbid"
    constrained = {name: metadata for name, (_, metadata) in validation_surface(Item)["fields"].items() if metadata}
    assert constrained == {"source": ["MinLen(min_length=1)", "MaxLen(max_length=100)"],
                           "source_id": ["MinLen(min_length=1)", "MaxLen(max_length=300)"]}
    engagement = validation_surface(Engagement)
    assert engagement["validators"] == [] and engagement["model_validators"] == []
    assert {name: metadata for name, (_, metadata) in engagement["fields"].items()} == {
        name: ["Ge(ge=0)"] for name in ("likes", "dislikes", "reposts", "comments", "reads")}
    record = validation_surface(RawRecord)
    assert record["validators"] == [] and record["model_validators"] == []
    assert all(not metadata for _, metadata in record["fields"].values())


def same_model(built: BaseModel, validated: BaseModel) -> None:
    assert type(built) is type(validated)
    assert built == validated
    assert built.model_fields_set == validated.model_fields_set
    assert list(built.model_fields_set) == list(validated.model_fields_set)  # iteration order: pickles alike
    assert pickle.dumps(built) == pickle.dumps(validated)
    assert built.model_dump_json() == validated.model_dump_json()


SHANGHAI = timezone(timedelta(hours=8))
PAYLOADS: list[dict[str, Any]] = [
    {"title": "小区噪音", "content": "楼下 歌舞厅\n\n每晚  吵到两点", "published_at": "2026-03-01 22:10", "likes": "12"},
    {"title": "<b>停水</b>&amp;停电", "content": "", "source_id": "A-1", "published_at": "2026年3月2日 08:05", "author": "张三", "region": "江北区", "reads": 7,
     "reply": {"content": "已转交", "replied_at": "2026-03-02"}, "url": "http://example.test/a"},
    {"content": "只有正文", "published_at": 1_700_000_000, "tags": ["a", "b"], "nested": {"k": [1, 2.5, None]}},
    {"title": "全角ＡＢＣ１２３　空格", "content": "\t控制\x07字符\r\n换行", "published_at": "2026-03-01T08:00:00Z"},
]


@pytest.mark.parametrize("payload", PAYLOADS, ids=range(len(PAYLOADS)))
def test_an_item_normalise_builds_unvalidated_is_the_validated_one(payload: dict[str, Any],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[type] = []

    def spy(cls: type[BaseModel], values: dict[str, Any], given: tuple[str, ...]) -> Any:
        built.append(cls)
        return built_as_validated(cls, values, given)

    monkeypatch.setattr(intake, "built_as_validated", spy)
    config = load_config(REPO / "yuqing.example.yaml")
    source = next(iter(config.sources))
    stage = NormaliseStage(config, now=datetime(2026, 3, 5, 12, 0, tzinfo=SHANGHAI))
    item = stage.to_item(source, dict(payload))
    assert Item in built  # the unvalidated path was taken
    values = {name: getattr(item, name) for name in item.model_fields_set}
    same_model(item, Item(**values))
    same_model(item.engagement, Engagement(**{n: getattr(item.engagement, n) for n in item.engagement.model_fields_set}))


@pytest.mark.parametrize("payload,reason", [
    ({"title": "x", "source_id": "i" * 301, "published_at": "2026-03-01"}, "source_id"),
    ({"title": "x", "published_at": "2026-13-40"}, "invalid date"),
    ({"title": "x", "likes": -1, "published_at": "2026-03-01"}, "likes"),
])
def test_what_validation_would_refuse_is_still_refused(payload: dict[str, Any], reason: str) -> None:
    config = load_config(REPO / "yuqing.example.yaml")
    stage = NormaliseStage(config)
    with pytest.raises(RejectedInput, match=reason):
        stage.to_item(next(iter(config.sources)), payload)


def test_a_json_line_record_built_unvalidated_is_the_validated_one(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text('{"title": "噪音", "content": "楼下", "n": 1}\n{"标题": "停水"}\n', encoding="utf-8")
    records = [r for r in FileImporter(path, "board_tipdm").records() if isinstance(r, RawRecord)]
    assert len(records) == 2
    for record in records:
        same_model(record, RawRecord(source=record.source, payload=record.payload, origin=record.origin))
