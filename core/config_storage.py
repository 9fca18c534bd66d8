"""The `storage.elasticsearch` section: where items live when `storage.backend` is `elasticsearch`."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator

from core.config_base import Strict

_PREFIX = re.compile(r"^[a-z0-9][a-z0-9_-]{0,60}$")


class ElasticsearchConfig(Strict):
    """A cluster (Elasticsearch, OpenSearch or an API-compatible fork) holding the items; the state stays in SQL.

    `compatible_with: false` makes the client send plain `application/json`: OpenSearch and its forks answer the
    Elasticsearch client's `compatible-with` media type with 406."""

    url: str | list[str]  # one node or several: http(s)://host:port
    index_prefix: str = "yuqing"
    username: str | None = None
    password: SecretStr | None = None
    ca_file: Path | None = None  # PEM bundle of the cluster's certificate authority (https URLs)
    compatible_with: bool = True
    shards: int = Field(1, ge=1, le=1024)
    replicas: int = Field(1, ge=0, le=16)
    bulk_batch: int = Field(500, ge=1, le=10_000)  # documents per _bulk request
    bulk_max_bytes: int = Field(8 * 1024 * 1024, ge=64 * 1024)  # and at most this many bytes
    retries: int = Field(5, ge=0, le=20)  # on 429, 5xx and lost connections, with exponential backoff
    retry_backoff_s: float = Field(0.5, gt=0, le=30)
    timeout_s: float = Field(30, gt=0)

    @field_validator("url")
    @classmethod
    def _urls(cls, value: str | list[str]) -> str | list[str]:
        urls = [value] if isinstance(value, str) else value
        if not urls:
            raise ValueError("name at least one node URL")
        for url in urls:
            if not re.match(r"^https?://[^/\s]+", url):
                raise ValueError(f"{url!r} is not an http(s)://host:port URL")
        return value

    @field_validator("index_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not _PREFIX.match(value):
            raise ValueError("lower-case letters, digits, '-' and '_' only, starting with a letter or digit "
                             "(an index name's rules), at most 61 characters")
        return value

    @field_validator("ca_file")
    @classmethod
    def _ca_file(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"{value} is not a file")
        return value

    @model_validator(mode="after")
    def _auth(self) -> ElasticsearchConfig:
        if (self.username is None) != (self.password is None):
            raise ValueError("give both username and password, or neither")
        return self

    @property
    def urls(self) -> list[str]:
        return [self.url] if isinstance(self.url, str) else list(self.url)
