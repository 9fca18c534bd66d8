"""`yuqing nlp ...`: train the models, and classify JSON lines (the stable batch interface for evaluation).

classify reads one JSON object per line on stdin, `{"id", "title", "content"}` plus optional `source`, `channel`,
`published_at`, `likes`, `reposts`, `comments`, and writes one JSON line per input, in input order, with `id`,
`topic`, `topic_score`, `emotion`, `emotion_score` (calibrated confidence), `polarity`, `polarity_score`,
`risk_score`, `risk_level`, `risk_reasons`, `keywords`, `schemes` (and `event_id`, `issue_id` with --events).
A line that cannot be read gives `{"id": ..., "error": ...}`. An item with no words (empty, emoji or punctuation
only) gets `topic` and `topic_score` null, emotion and polarity neutral.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

nlp_app = typer.Typer(help="Text understanding: train models, classify JSON lines.", no_args_is_help=True,
                      pretty_exceptions_enable=False)

OUTPUT_FIELDS = ("topic", "topic_score", "emotion", "emotion_score", "polarity", "polarity_score", "risk_score",
                 "risk_level", "risk_reasons", "keywords", "schemes")


@nlp_app.command("train")
def train_cmd(
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="shared data folder (default: YUQING_DATA_DIR "
                                                  "or ../shared/data)")] = None,
    models_dir: Annotated[Path, typer.Option("--models-dir", help="where artifacts are written")] = Path("models"),
    topic_csv: Annotated[Path | None, typer.Option("--topic-csv", help="train the topic model from your own CSV "
                                                   "with columns text,label")] = None,
    task: Annotated[list[str] | None, typer.Option("--task", help="topic, emotion, polarity (repeatable; "
                                                   "default all)")] = None,
    folds: Annotated[int, typer.Option(min=2, max=10)] = 5,
    limit: Annotated[int | None, typer.Option(help="train on at most about this many rows per data set "
                                              "(smoke tests)")] = None,
) -> None:
    """Train topic, emotion and polarity models, print cross-validated scores, write artifacts and model cards."""
    from core.errors import YuqingError
    from core.paths import data_dir as default_data_dir
    from nlp import train as training
    from nlp.artifacts import TASKS

    tasks = tuple(task or TASKS)
    bad = [t for t in tasks if t not in TASKS]
    if bad:
        raise typer.BadParameter(f"unknown task(s) {bad}; choose from {', '.join(TASKS)}")
    folder = data_dir.resolve() if data_dir else default_data_dir()
    try:
        results = training.train_all(folder, models_dir, topic_csv=topic_csv, limit=limit, folds=folds, tasks=tasks)
    except YuqingError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from exc
    summary = {name: {"macro_f1": round(ev["macro_f1"], 4), "n": ev["n"], "protocol": ev["protocol"],
                      "per_class_f1": {c: r["f1"] for c, r in ev["per_class"].items()}} for name, ev in results.items()}
    typer.echo(json.dumps({"models_dir": str(models_dir), "scores": summary}, ensure_ascii=False, indent=1))


def _int(value: Any, field: str) -> int:
    if value is None or value == "":
        return 0
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"{field} must be a number")
    number = int(float(value))
    if number < 0:
        raise ValueError(f"{field} must not be negative")
    return number


def parse_line(line: str, seq: int, now: datetime) -> tuple[Any, Any]:
    """(id, Item) from one input line; raises ValueError with a readable reason."""
    from core.models import Channel, Engagement, Item
    from nlp.normalise import TimeParseError, clean_text, parse_time

    try:
        obj = json.loads(line)
    except ValueError as exc:
        raise ValueError(f"not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise ValueError("each line must be a JSON object")
    ident = obj.get("id")
    for key in ("title", "content"):
        if obj.get(key) is not None and not isinstance(obj[key], str):
            raise _Bad(ident, f"{key} must be a string")
    channel = obj.get("channel") or "board"
    if channel not in Channel.__members__:
        raise _Bad(ident, f"unknown channel {channel!r}; one of {', '.join(Channel.__members__)}")
    try:
        published = parse_time(obj["published_at"], now=now) if obj.get("published_at") not in (None, "") else now
        engagement = Engagement(likes=_int(obj.get("likes"), "likes"), reposts=_int(obj.get("reposts"), "reposts"),
                                comments=_int(obj.get("comments"), "comments"))
    except (TimeParseError, ValueError) as exc:
        raise _Bad(ident, str(exc).splitlines()[0]) from None
    source = str(obj.get("source") or "cli")[:100] or "cli"
    item = Item(source=source, channel=Channel(channel), source_id=str(ident if ident is not None else seq)[:300] or "-",
                title=clean_text(obj.get("title")), content=clean_text(obj.get("content")), published_at=published,
                fetched_at=now, engagement=engagement)
    return ident, item


class _Bad(ValueError):
    def __init__(self, ident: Any, message: str) -> None:
        super().__init__(message)
        self.ident = ident


def result_of(ident: Any, item: Any, events: Any) -> dict[str, Any]:
    """The output line of one item; `events`: the batch's event clusterer (`--events`: adds event_id and issue_id),
    or None."""
    e = item.enrichment
    out: dict[str, Any] = {"id": ident}
    for key in OUTPUT_FIELDS:
        value = getattr(e, key)
        if key == "risk_reasons":
            value = [r.model_dump(mode="json") for r in value]
        out[key] = value
    if events:
        out["event_id"] = e.event_id
        event = events.events.get(events.resolve(e.event_id)) if e.event_id else None
        out["issue_id"] = event.issue_id if event is not None else None
    return out


def classify_stream(lines: Any, out: Any, *, events: bool = False, batch_size: int = 256,
                    config: Any = None) -> int:
    """Classify JSON lines from `lines` to `out`; returns the number of error lines written."""
    from analysis.stages import build_enrich_stages
    from core.config import Config
    from flow.stages import Batch, Chain

    config = config or Config()
    stages = build_enrich_stages(config, store=None)  # the events stage is always part of it
    chain = Chain(stages)
    state = next((s.state for s in stages if getattr(s, "state", None) is not None), None)
    clusterer = state.events if events and state is not None else None
    now = datetime.now(UTC)
    errors = 0
    pending: list[tuple[Any, Any, str | None]] = []  # (id, item or None, error)

    def flush() -> None:
        nonlocal errors
        items = [it for _, it, _ in pending if it is not None]
        batch = chain.run(Batch(items=list(items)))
        survived = {id(it) for it in batch.items}
        reasons = {}
        for q in batch.quarantined:
            reasons.setdefault(q.stage, q.reason)
        for ident, item, err in pending:
            if item is not None and id(item) not in survived:
                err = "processing failed: " + "; ".join(f"{k}: {v}" for k, v in reasons.items())
            if err is not None:
                errors += 1
                out.write(json.dumps({"id": ident, "error": err}, ensure_ascii=False) + "\n")
            else:
                out.write(json.dumps(result_of(ident, item, clusterer), ensure_ascii=False, default=str) + "\n")
        out.flush()
        pending.clear()

    for seq, raw in enumerate(lines):
        line = raw.strip()
        if not line:
            continue
        try:
            ident, item = parse_line(line, seq, now)
            pending.append((ident, item, None))
        except _Bad as exc:
            pending.append((exc.ident, None, str(exc)))
        except ValueError as exc:
            pending.append((None, None, str(exc)))
        except Exception as exc:  # noqa: BLE001 - one bad line must never stop the stream
            pending.append((None, None, f"{exc.__class__.__name__}: {exc}"))
        if len(pending) >= batch_size:
            flush()
    if pending:
        flush()
    return errors


@nlp_app.command("classify")
def classify_cmd(
    events: Annotated[bool, typer.Option("--events", help="also cluster the batch into events and issues (adds event_id, "
                                                           "issue_id)")] = False,
    batch_size: Annotated[int, typer.Option(min=1, max=100_000)] = 256,
    models_dir: Annotated[Path | None, typer.Option("--models-dir")] = None,
    config_file: Annotated[Path | None, typer.Option("--config", "-c", help="YAML config whose risk terms, schemes, "
                                                     "places and models are used (default: built-in settings)")] = None,
) -> None:
    """Read JSON lines on stdin, write one JSON result (or error) line per input on stdout. With --config the
    result is what the service configured by that file gives for the same item."""
    from core.config import Config
    from core.errors import YuqingError

    if config_file is not None:
        from yuqing.config_file import load_config_or_exit

        config = load_config_or_exit(config_file)
    else:
        config = Config()
    if models_dir is not None and hasattr(config, "nlp"):
        config.nlp.models_dir = models_dir
    try:
        sys.stdin.reconfigure(encoding="utf-8", errors="replace")  # type: ignore[union-attr]
        sys.stdout.reconfigure(encoding="utf-8")  # type: ignore[union-attr]
        classify_stream(sys.stdin, sys.stdout, events=events, batch_size=batch_size, config=config)
    except YuqingError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from exc


def main() -> None:  # `python -m nlp.cli`
    nlp_app()


if __name__ == "__main__":
    main()
