"""Starting yuqing: which config file `make run` and the CLI read, and one clear line (not a traceback) when a port
the service needs is taken."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from core.listen import port_problem
from core.paths import REPO_ROOT
from yuqing.config_file import config_path


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port on 127.0.0.1 that another process is listening on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def write_config(tmp_path: Path, server_port: int, demo_site: dict) -> Path:
    path = tmp_path / "yuqing.yaml"
    path.write_text(yaml.safe_dump({"server": {"port": server_port}, "storage": {"sqlite_path": str(tmp_path / "y.db")},
                                    "crawling": {"state_dir": str(tmp_path / "crawl"), "demo_site": demo_site}}),
                    encoding="utf-8")
    return path


def run_cli(*args: str, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "yuqing", *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def test_port_problem_names_the_setting_only_when_the_port_is_taken(busy_port: int) -> None:
    assert port_problem("127.0.0.1", free_port(), "server.port") is None
    assert port_problem("127.0.0.1", 0, "server.port") is None
    assert port_problem("127.0.0.1", busy_port, "server.port") == (
        f"error: port {busy_port} on 127.0.0.1 is in use (another yuqing?); "
        "set server.port in yuqing.yaml or stop the other process")


def test_serve_on_a_busy_api_port_says_so_in_one_line(tmp_path: Path, busy_port: int) -> None:
    config = write_config(tmp_path, busy_port, {"enabled": False})
    result = run_cli("serve", "--config", str(config))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: port {busy_port} on 127.0.0.1 is in use (another yuqing?); "
        "set server.port in yuqing.yaml or stop the other process"]
    assert not (tmp_path / "y.db").exists()  # it stopped before opening the store


def test_serve_on_a_busy_demo_site_port_says_so_in_one_line(tmp_path: Path, busy_port: int) -> None:
    config = write_config(tmp_path, free_port(), {"enabled": True, "port": busy_port})
    result = run_cli("serve", "--config", str(config))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: port {busy_port} on 127.0.0.1 is in use (another yuqing?); "
        "set crawling.demo_site.port in yuqing.yaml or stop the other process"]


def test_demo_site_command_on_a_busy_port_says_so_in_one_line(tmp_path: Path, busy_port: int) -> None:
    config = write_config(tmp_path, free_port(), {"enabled": False, "port": busy_port})
    result = run_cli("demo-site", "--config", str(config))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"port {busy_port} on 127.0.0.1 is in use" in result.stderr and "crawling.demo_site.port" in result.stderr


def test_config_lookup_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Named on the command line, then $YUQING_CONFIG, then ./yuqing.yaml, then ./yuqing.example.yaml."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("YUQING_CONFIG", raising=False)
    assert config_path(None) == Path("yuqing.example.yaml")
    (tmp_path / "yuqing.yaml").write_text("{}", encoding="utf-8")
    assert config_path(None) == Path("yuqing.yaml")
    monkeypatch.setenv("YUQING_CONFIG", "from-env.yaml")
    assert config_path(None) == Path("from-env.yaml")
    assert config_path(Path("named.yaml")) == Path("named.yaml")


@pytest.mark.parametrize(("make_args", "serve_args"), [
    ([], "serve"),  # the CLI then picks $YUQING_CONFIG, ./yuqing.yaml or the example
    (["CONFIG=mine.yaml"], "serve --config mine.yaml"),
])
def test_make_run_leaves_the_config_choice_to_the_cli_unless_config_is_given(make_args: list[str], serve_args: str) -> None:
    """`make run` used to pass --config yuqing.example.yaml always, hiding ./yuqing.yaml and $YUQING_CONFIG."""
    dry_run = subprocess.run(["make", "-n", "-W", "pyproject.toml", "run", *make_args], cwd=REPO_ROOT, capture_output=True,
                             text=True, timeout=30)
    serve_line = [line for line in dry_run.stdout.splitlines() if "yuqing serve" in line]
    assert serve_line and serve_line[0].rstrip().endswith(f"/yuqing {serve_args}")


def test_make_run_installs_no_test_extras() -> None:
    """A first `make run` must not wait for pytest, ruff, playwright, psycopg and aiosmtpd."""
    dry_run = subprocess.run(["make", "-n", "-W", "pyproject.toml", "run"], cwd=REPO_ROOT, capture_output=True, text=True,
                             timeout=30)
    installs = [line for line in dry_run.stdout.splitlines() if "pip install" in line and "-e" in line]
    assert installs and all("[test]" not in line for line in installs)


def test_building_the_service_loads_no_training_or_report_libraries(tmp_path: Path) -> None:
    """Every process (service, import, its workers, read workers) builds the service: scikit-learn with the part of
    scipy it pulls in cost 1.7 s of that, scipy.stats 0.5 s, and only training and spike tests use them."""
    script = ("import sys\nfrom core.config import parse_config\nfrom yuqing.service import build_service\n"
              f"build_service(parse_config({{'storage': {{'sqlite_path': {str(tmp_path / 's.db')!r}}}}})).close()\n"
              "print(sorted(m for m in ('sklearn', 'scipy.stats', 'pandas', 'matplotlib') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_a_service_that_serves_no_http_imports_no_web_framework(tmp_path: Path) -> None:
    """`yuqing import` builds the whole service but never an app: the extensions' routers (and FastAPI with them) are
    imported only when an app includes them — and then every one of them is there."""
    config = tmp_path / "yuqing.yaml"
    config.write_text(yaml.safe_dump({"storage": {"sqlite_path": str(tmp_path / "y.db")},
                                      "crawling": {"state_dir": str(tmp_path / "crawl")}}), encoding="utf-8")
    code = ("import sys; from core.config import load_config; from yuqing.service import build_service; "
            f"service = build_service(load_config({str(config)!r})); "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'fastapi', 'starlette', 'sse_starlette'})); "
            "print(len(service.routers), 'fastapi' in sys.modules); service.close()")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, check=True,
                          env={"PYTHONPATH": str(REPO_ROOT), "PATH": ""})
    before_app, with_app = done.stdout.splitlines()[-2:]
    assert before_app == "[]"
    assert with_app == "6 True"  # crawl, events, alerts, two of playbooks, reports
