"""`yuqing token create` prints the token alone on its last line, and the token works against the API."""

from __future__ import annotations

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.main import create_app
from core.config import load_config
from yuqing.cli import app as cli
from yuqing.service import build_service


def _config(tmp_path) -> str:  # noqa: ANN001
    path = tmp_path / "y.yaml"
    path.write_text(f"storage: {{sqlite_path: {tmp_path / 'y.db'}}}\nsources: {{hotline: {{channel: hotline}}}}\n",
                    encoding="utf-8")
    return str(path)


def test_token_create_prints_the_token_last_and_it_authenticates(tmp_path):
    config = _config(tmp_path)
    runner = CliRunner()
    made = runner.invoke(cli, ["token", "create", "--role", "ingest", "--name", "platform", "--source", "hotline",
                               "--config", config])
    assert made.exit_code == 0, made.output
    token = made.stdout.strip().splitlines()[-1]
    assert token.startswith("yq_") and " " not in token
    bad = runner.invoke(cli, ["token", "create", "--role", "boss", "--name", "x", "--config", config])
    assert bad.exit_code == 2 and "boss" in bad.output
    nosource = runner.invoke(cli, ["token", "create", "--role", "ingest", "--name", "x", "--source", "ghost",
                                   "--config", config])
    assert nosource.exit_code == 2 and "ghost" in nosource.output
    user = runner.invoke(cli, ["user", "create", "mary", "--role", "manager", "--password-stdin", "--config", config],
                         input="a long enough password\n")
    assert user.exit_code == 0, user.output
    service = build_service(load_config(config), enrich=False, extensions=False)
    try:
        app = create_app(service, start_workers=False)
        client = TestClient(app, base_url="http://127.0.0.1", headers={"Authorization": f"Bearer {token}"})
        pushed = client.post("/api/ingest/hotline", json={"records": [{"title": "路灯不亮", "content": "小区路灯坏了一周",
                                                                        "published_at": "2026-12-01 08:00"}]})
        assert pushed.status_code in (200, 202), pushed.text
        login = TestClient(app, base_url="http://127.0.0.1").post(
            "/api/auth/login", json={"username": "mary", "password": "a long enough password"})
        assert login.status_code == 200 and login.json()["roles"] == ["manager"]
    finally:
        service.close()
