# yuqing: `make run` starts the service on the embedded store; `make test` runs ruff and pytest.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# `make run` needs only the runtime dependencies; the test extras (pytest, ruff, playwright, aiosmtpd) are
# installed on top of them by the first `make test`, `make lint` or `make bench`.
RUN_STAMP := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test
# Config file for `make run`: CONFIG=FILE if given, else the CLI's own order: $$YUQING_CONFIG, ./yuqing.yaml,
# ./yuqing.example.yaml.
CONFIG ?=

.PHONY: run test lint bench clean browser-deps services

$(BIN)/python:
	@echo "creating $(VENV)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(RUN_STAMP): pyproject.toml | $(BIN)/python
	@echo "installing yuqing and its runtime dependencies into $(VENV) (first time: about a minute)..."
	$(BIN)/python -m pip install --progress-bar on -e .
	touch $@

$(TEST_STAMP): $(RUN_STAMP)
	@echo "installing the test extras (pytest, ruff, playwright, aiosmtpd, hypothesis, schemathesis)..."
	$(BIN)/python -m pip install --progress-bar on -e '.[test]'
	touch $@

run: $(RUN_STAMP)
	mkdir -p var
	$(BIN)/yuqing serve $(if $(CONFIG),--config $(CONFIG))

# The browser test needs Debian's Chromium and a CJK font; install them when we may (root), else the test skips.
browser-deps:
	@if ! command -v chromium >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing chromium and fonts-wqy-zenhei (Debian packages)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-wqy-zenhei >/dev/null; \
	  else echo "chromium not installed and not root: browser tests will be skipped"; fi; \
	fi

# PostgreSQL (127.0.0.1:5432, trust auth, database `test`) and Redis (127.0.0.1:6379) for the state, crawl-queue and
# several-instance tests: started when installed but not running (CI runs `make test`); tests needing an absent one
# skip with the reason, and fail under CI=true.
services:
	@if command -v pg_isready >/dev/null 2>&1 && ! pg_isready -q -h 127.0.0.1 -p 5432; then \
	  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then \
	    echo "starting PostgreSQL"; \
	    pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql | head -1) main start || true; \
	    for i in 1 2 3 4 5 6 7 8 9 10; do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done; \
	  fi; \
	fi
	@if command -v redis-server >/dev/null 2>&1 && ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then \
	  echo "starting Redis"; \
	  mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true; \
	  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no --dir /var/lib/redis \
	    --logfile /var/log/redis/ci.log || true; \
	  for i in 1 2 3 4 5; do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 1; done; \
	fi

test: $(TEST_STAMP) browser-deps services
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

lint: $(TEST_STAMP)
	$(BIN)/ruff check .

# Every bench/bench_*.py (long soaks and loads belong here, not in `make test`); writes bench/RESULTS.md and
# bench/results.json.
bench: $(TEST_STAMP)
	$(BIN)/python bench/report.py

clean:
	rm -rf var .pytest_cache .ruff_cache build
