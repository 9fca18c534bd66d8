from pathlib import Path

import pytest

from core.config import load_config, parse_config
from core.errors import ConfigError


def test_example_config_is_valid() -> None:
    cfg = load_config(Path(__file__).resolve().parents[2] / "yuqing.example.yaml")
    assert cfg.storage.backend == "sqlite"
    assert cfg.sources


@pytest.mark.parametrize(
    ("data", "field", "reason"),
    [
        ({"server": {"port": 70000}}, "server.port", "less than or equal to 65535"),
        ({"sources": {"x": {"channel": "tv"}}}, "sources.x.channel", "Input should be"),
        ({"sources": {"x": {"channel": "board", "typo": 1}}}, "sources.x.typo", "Extra inputs are not permitted"),
        ({"unknown_section": {}}, "unknown_section", "Extra inputs are not permitted"),
        ({"ingest": {"batch_size": 0}}, "ingest.batch_size", "greater than or equal to 1"),
        ({"sources": {"坏": {"channel": "board"}}}, "<root>", "must be ASCII"),
    ],
)
def test_bad_config_names_field_and_reason(data: dict, field: str, reason: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(data, "bad.yaml")
    message = info.value.message
    assert f"bad.yaml: {field}" in message or (field == "<root>" and reason in message)
    assert reason in message


def test_env_reference_resolves_and_missing_env_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YQ_TEST_HOST", "0.0.0.0")
    cfg = parse_config({"server": {"host": {"$env": "YQ_TEST_HOST"}}})
    assert cfg.server.host == "0.0.0.0"
    with pytest.raises(ConfigError, match="YQ_MISSING_VAR is not set"):
        parse_config({"server": {"host": {"$env": "YQ_MISSING_VAR"}}})


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read configuration"):
        load_config(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("server: [unclosed", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_check_config_command_exits_non_zero_on_bad_file(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from yuqing.cli import app

    bad = tmp_path / "bad.yaml"
    bad.write_text("sources:\n  x: {channel: tv}\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["check-config", "-c", str(bad)])
    assert result.exit_code == 2
    assert "sources.x.channel" in result.output
