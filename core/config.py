"""The one YAML configuration, validated strictly; a bad file stops start-up with the field and the reason."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from core import yamlfile
from core.config_access import AccessConfig
from core.config_alerts import AlertsConfig
from core.config_analysis import AnalysisConfig
from core.config_base import Strict
from core.config_crawl import CrawlingConfig, CrawlSpec, DemoSiteConfig
from core.config_nlp import NlpConfig
from core.config_playbooks import CalendarConfig, PlaybooksConfig
from core.config_reports import ReportsConfig
from core.config_storage import ElasticsearchConfig
from core.errors import ConfigError, SourceError
from core.models import Channel


class ServerConfig(Strict):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    # Processes that search and encode item feed pages with the SQLite file open read-only (api/readers.py), so that
    # concurrent feed requests use more than one core; 0: in the service process. SQLite items only.
    read_workers: int = Field(0, ge=0, le=16)


class StorageConfig(Strict):
    """Items in the embedded SQLite file (default) or on Elasticsearch; the relational state (inbox, quarantine,
    alerts, events, …) stays in SQL either way: in the SQLite file, or in `state_url`'s database."""

    backend: Literal["sqlite", "elasticsearch"] = "sqlite"
    sqlite_path: Path = Path("var/yuqing.db")
    # Where the relational state lives (crawl state, inbox, quarantine, events, alerts and their outbox, silences, plan
    # runs, users, audit): an SQLAlchemy URL such as postgresql+psycopg://yuqing@db:5432/yuqing. Unset: in the items'
    # SQLite file. Several instances share one state database (docs/scale-out.md).
    state_url: str | None = None
    elasticsearch: ElasticsearchConfig | None = None  # with backend: elasticsearch (docs/elasticsearch.md)

    @field_validator("state_url")
    @classmethod
    def _state_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            url = make_url(value)
        except ArgumentError as exc:
            raise ValueError(f"not an SQLAlchemy URL ({exc}); e.g. postgresql+psycopg://user@host:5432/db") from None
        if url.get_backend_name() not in ("sqlite", "postgresql"):
            raise ValueError(f"state database {url.get_backend_name()!r} is not supported; use sqlite or postgresql")
        return value

    @model_validator(mode="after")
    def _backend_settings(self) -> StorageConfig:
        if self.backend == "elasticsearch" and self.elasticsearch is None:
            raise ValueError("backend elasticsearch needs storage.elasticsearch (at least its url)")
        return self


class IngestConfig(Strict):
    """Limits that keep hostile input from hurting the store; over-limit input is quarantined."""

    max_content_chars: int = Field(200_000, ge=1000)
    max_title_chars: int = Field(1000, ge=10)
    batch_size: int = Field(500, ge=1)
    timezone: str = "Asia/Shanghai"
    # Processes that run the stateless stages of `yuqing import` (flow/pool.py); None: one per core; 1: none, the
    # import runs on the writer alone. The service's own ingest (pushes, crawls) never starts them.
    workers: int | None = Field(None, ge=1, le=64)
    # `yuqing import` commits once per this many records (whole batches), not once per batch: each commit writes every
    # index page its rows touched, and most pages are touched by every batch (flow/writer.py `begin_group`). The
    # store's write lock is held meanwhile: a service writing the same SQLite file waits up to that long (a few
    # seconds at 5,000). `batch_size` or less: a commit per batch.
    import_commit_items: int = Field(5000, ge=1)
    # How much lower the import's pool workers run than the writer (added to their nice value; 0: the same). The one
    # writer limits an import, and three busy processes on two cores otherwise share them evenly: at 10 the writer
    # gets a core whenever it has work, and the workers the rest (50,000 rows on two cores: 6–16 % more items/s in
    # three alternated pairs, bench/bench_import.py). A service on the same machine keeps its share too.
    worker_niceness: int = Field(10, ge=0, le=19)


class ImportSpec(Strict):
    """How to read a file export of this source: file column name → item field (dotted for nested)."""

    columns: dict[str, str] = Field(default_factory=dict)
    sheet: str | None = None
    encoding: str | None = None


class SourceConfig(Strict):
    """One configured site or account feed; its id is the key under `sources`."""

    channel: Channel
    name: str = ""
    enabled: bool = True
    region: str | None = None
    import_: ImportSpec | None = Field(None, alias="import")
    crawl: CrawlSpec | None = None  # how the source is crawled (core/config_crawl.py)


class DemoConfig(Strict):
    """Generated demo data so `make run` shows something with no internet."""

    enabled: bool = False
    items: int = Field(300, ge=0, le=100_000)
    seed: int = 2026


class Config(Strict):
    """Root of yuqing.yaml."""

    data_dir: Path = Path("../shared/data")
    server: ServerConfig = Field(default_factory=ServerConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    sources: dict[str, SourceConfig] = Field(default_factory=dict)
    demo: DemoConfig = Field(default_factory=DemoConfig)
    crawling: CrawlingConfig = Field(default_factory=CrawlingConfig)  # core/config_crawl.py
    analysis: AnalysisConfig = Field(default_factory=AnalysisConfig)  # core/config_analysis.py
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)  # core/config_alerts.py
    nlp: NlpConfig = Field(default_factory=NlpConfig)  # core/config_nlp.py
    access: AccessConfig = Field(default_factory=AccessConfig)  # core/config_access.py
    calendar: CalendarConfig = Field(default_factory=CalendarConfig)  # core/config_playbooks.py
    playbooks: PlaybooksConfig = Field(default_factory=PlaybooksConfig)  # core/config_playbooks.py
    reports: ReportsConfig = Field(default_factory=ReportsConfig)  # core/config_reports.py

    @model_validator(mode="after")
    def _source_ids(self) -> Config:
        for key in self.sources:
            if not key.replace("_", "").isalnum() or not key.isascii():
                raise ValueError(f"source id {key!r} must be ASCII letters, digits and underscores")
        return self

    @model_validator(mode="after")
    def _report_receivers(self) -> Config:
        """Reports go by e-mail through alert receivers: each named one must exist and have an e-mail integration."""
        for i, name in enumerate(self.reports.receivers):
            receiver = self.alerts.receiver(name)
            if receiver is None:
                known = sorted(r.name for r in self.alerts.receivers) or "none"
                raise ValueError(f"reports.receivers[{i}]: {name!r} is not an alerts receiver; receivers: {known}")
            if receiver.email is None:
                raise ValueError(f"reports.receivers[{i}]: receiver {name!r} has no e-mail integration (reports are e-mailed)")
        return self

    def source(self, source_id: str) -> SourceConfig:
        """The config of one source, or a clear error naming the known ones."""
        try:
            return self.sources[source_id]
        except KeyError:
            known = ", ".join(sorted(self.sources)) or "none"
            raise SourceError(f"unknown source {source_id!r}; configured sources: {known}") from None


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _resolve_env(node: Any, path: str) -> Any:
    """Replace `{"$env": NAME}` with the environment variable, so secrets never sit in the file."""
    if isinstance(node, dict):
        if set(node) == {"$env"}:
            name = node["$env"]
            if not isinstance(name, str) or not _ENV_NAME.fullmatch(name):
                raise ConfigError(f"{path or '<root>'}: $env must name an environment variable (letters, digits, _), "
                                  f"got {name!r}")
            if name not in os.environ:
                raise ConfigError(f"{path or '<root>'}: environment variable {name} is not set")
            return os.environ[name]
        return {k: _resolve_env(v, f"{path}.{k}" if path else str(k)) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve_env(v, f"{path}[{i}]") for i, v in enumerate(node)]
    return node


DEMO_SITE_PLACEHOLDER = "{demo_site}"


def _expand_demo_site(data: dict[str, Any]) -> dict[str, Any]:
    """Write `{demo_site}` in the sources' strings as the demo site's URL, so `crawling.demo_site.port` alone moves it."""
    section = data.get("crawling", {}).get("demo_site", {}) if isinstance(data.get("crawling"), dict) else {}
    try:
        demo_site = DemoSiteConfig.model_validate(section)
    except ValidationError:
        return data  # the full validation below reports the problem with its field
    used_at: list[str] = []

    def expand(node: Any, path: str) -> Any:
        if isinstance(node, str) and DEMO_SITE_PLACEHOLDER in node:
            used_at.append(path)
            return node.replace(DEMO_SITE_PLACEHOLDER, demo_site.url)
        if isinstance(node, dict):
            return {k: expand(v, f"{path}.{k}") for k, v in node.items()}
        if isinstance(node, list):
            return [expand(v, f"{path}[{i}]") for i, v in enumerate(node)]
        return node

    sources = expand(data.get("sources"), "sources")
    if used_at and demo_site.port == 0:
        raise ConfigError(f"{used_at[0]}: {DEMO_SITE_PLACEHOLDER} needs a fixed crawling.demo_site.port, not 0 (any free port)")
    return {**data, "sources": sources} if "sources" in data else data


def format_validation_error(origin: str, exc: ValidationError) -> ConfigError:
    """One line per problem: file, dotted field, reason."""
    lines = []
    errors = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "<root>"
        lines.append(f"{origin}: {field}: {err['msg']}")
        errors.append({"loc": [str(p) for p in err["loc"]], "msg": err["msg"]})
    return ConfigError("invalid configuration\n" + "\n".join(lines), errors=errors)


def parse_config(data: dict[str, Any], origin: str = "<config>") -> Config:
    """Validate an already-loaded mapping."""
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: the top level must be a mapping, got {type(data).__name__}")
    resolved = _expand_demo_site(_resolve_env(data, ""))
    try:
        return Config.model_validate(resolved)
    except ValidationError as exc:
        raise format_validation_error(origin, exc) from exc


def load_config(path: str | Path) -> Config:
    """Read, resolve secrets and validate the YAML file at `path`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read configuration: {exc.strerror}") from exc
    try:
        data = yamlfile.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    return parse_config(data, str(path))
