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

.PHONY: run test lint bench clean browser-deps echarts services bytecode
# ECharts for the web page's charts, from the npm registry (only its one minified file is kept; gitignored). Without
# npm or network the pages still work and say where the charts would be.
ECHARTS_VERSION := 5.6.0
ECHARTS := api/web/vendor/echarts.min.js

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

$(ECHARTS):
	@if command -v npm >/dev/null 2>&1; then \
	  echo "fetching ECharts $(ECHARTS_VERSION) for the charts (npm registry, 10 MB download, about 10 s)..."; \
	  tmp=$$(mktemp -d) && (cd $$tmp && npm pack --silent echarts@$(ECHARTS_VERSION) >/dev/null) \
	    && tar -xzf $$tmp/echarts-$(ECHARTS_VERSION).tgz -C $$tmp package/dist/echarts.min.js \
	    && mkdir -p $(@D) && mv $$tmp/package/dist/echarts.min.js $@; rm -rf $$tmp; \
	  [ -f $@ ] || echo "could not fetch ECharts: pages will show no charts (run make echarts later)"; \
	else echo "npm not found: pages will show no charts (apt-get install npm, then make echarts)"; fi

echarts: $(ECHARTS)

# Bytecode of the project's own packages (pip compiles the dependencies', not an editable install's). Where
# PYTHONDONTWRITEBYTECODE is set (containers, CI) every process would otherwise compile them again as it starts:
# ≈ 0.8 s of CPU for the service, for each import worker and for each CLI run a test starts. Only changed files are
# compiled again; a stale file is simply compiled in memory, as without this step.
PACKAGES := $(shell sed -n 's/^include = \[\(.*\)\]/\1/p' pyproject.toml | tr -d '",*')
bytecode: | $(BIN)/python
	@$(BIN)/python -m compileall -q -j 0 $(wildcard $(PACKAGES)) bench >/dev/null

run: $(RUN_STAMP) $(ECHARTS) bytecode
	mkdir -p var
	$(BIN)/yuqing serve $(if $(CONFIG),--config $(CONFIG))

# The browser tests need Debian's Chromium and a CJK font, the report tests pdftotext (poppler-utils); install the
# missing ones when we may (root), else those tests skip (and fail under CI=true).
browser-deps:
	@missing=""; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	fc-list 2>/dev/null | grep -qi "WenQuanYi Zen Hei" || missing="$$missing fonts-wqy-zenhei"; \
	command -v pdftotext >/dev/null 2>&1 || missing="$$missing poppler-utils"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing$$missing (Debian packages)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "not installed and not root:$$missing — browser and report tests will be skipped"; fi; \
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

test: $(TEST_STAMP) browser-deps services $(ECHARTS) bytecode
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

lint: $(TEST_STAMP)
	$(BIN)/ruff check .

# Every bench/bench_*.py (long soaks and loads belong here, not in `make test`); writes bench/RESULTS.md and
# bench/results.json.
bench: $(TEST_STAMP) $(ECHARTS) bytecode
	$(BIN)/python bench/report.py

clean:
	rm -rf var .pytest_cache .ruff_cache build test-artifacts
