"""storage.backend / storage.elasticsearch: strict config naming the field, and what the client sends."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest

from core.config import parse_config
from core.config_storage import ElasticsearchConfig
from core.errors import ConfigError
from nlp.search_tokens import index_tokens
from nlp.tokenize import segment
from storage.elasticsearch import ElasticsearchStore
from storage.sqlite import create_sqlite_engine
from tests.helpers.elastic import drop_indices, new_prefix
from tests.helpers.flaky_proxy import FlakyProxy

ES = {"url": "http://127.0.0.1:9200"}


@pytest.mark.parametrize(
    ("storage", "field", "reason"),
    [
        ({"backend": "elasticsearch"}, "storage", "backend elasticsearch needs storage.elasticsearch"),
        ({"backend": "solr"}, "storage.backend", "Input should be 'sqlite' or 'elasticsearch'"),
        ({"elasticsearch": {"url": "es1:9200"}}, "storage.elasticsearch.url", "not an http(s)://host:port URL"),
        ({"elasticsearch": {**ES, "index_prefix": "Yuqing"}}, "storage.elasticsearch.index_prefix", "lower-case"),
        ({"elasticsearch": {**ES, "username": "u"}}, "storage.elasticsearch", "give both username and password"),
        ({"elasticsearch": {**ES, "ca_file": "/nonexistent/ca.pem"}}, "storage.elasticsearch.ca_file", "is not a file"),
        ({"elasticsearch": {**ES, "shards": 0}}, "storage.elasticsearch.shards", "greater than or equal to 1"),
        ({"elasticsearch": {**ES, "replica": 1}}, "storage.elasticsearch.replica", "Extra inputs are not permitted"),
    ],
)
def test_bad_storage_config_names_field_and_reason(storage: dict, field: str, reason: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"storage": storage}, "bad.yaml")
    assert f"bad.yaml: {field}" in info.value.message and reason in info.value.message


def test_a_full_section_parses() -> None:
    config = parse_config({"storage": {"backend": "elasticsearch", "elasticsearch": {
        "url": ["https://es1:9200", "https://es2:9200"], "index_prefix": "city-yuqing", "username": "yuqing",
        "password": "secret", "compatible_with": False, "shards": 3, "replicas": 2}}}, "ok.yaml")
    es = config.storage.elasticsearch
    assert es.urls == ["https://es1:9200", "https://es2:9200"] and es.password.get_secret_value() == "secret"
    assert "secret" not in repr(es)


@pytest.fixture
def proxy(elasticsearch_url: str) -> Iterator[FlakyProxy]:
    flaky = FlakyProxy(elasticsearch_url)
    yield flaky
    flaky.close()


@pytest.mark.parametrize("compatible_with", [True, False])
def test_the_client_sends_auth_and_the_media_type_asked_for(proxy, elasticsearch_url, tmp_path, compatible_with):
    """Seen on the wire by a real proxy: basic auth on every request; plain JSON with compatible_with: false."""
    prefix = new_prefix()
    config = ElasticsearchConfig(url=proxy.url, index_prefix=prefix, username="yuqing", password="s3cret",
                                 compatible_with=compatible_with, replicas=0, retries=0)
    try:
        store = ElasticsearchStore(config, create_sqlite_engine(tmp_path / "state.db"), segment=segment,
                                   index_segment=index_tokens)
        store.close()
    except Exception:  # noqa: BLE001 - osmem answers the compatible-with media type with 406: the headers are what we check
        assert compatible_with
    finally:
        drop_indices(elasticsearch_url, prefix)
    expected = "Basic " + base64.b64encode(b"yuqing:s3cret").decode()
    assert proxy.headers and all(h.get("authorization") == expected for h in proxy.headers)
    with_body = [h for h in proxy.headers if "content-type" in h]
    assert with_body
    if compatible_with:
        assert all("compatible-with=" in h["content-type"] for h in with_body)
    else:
        assert all(h["content-type"] == "application/json" and h["accept"] == "application/json" for h in with_body)
