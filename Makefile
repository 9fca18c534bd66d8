# yuqing: `make run` starts the service on the embedded store; `make test` runs ruff and pytest.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONFIG ?= yuqing.example.yaml

.PHONY: run test lint bench clean browser-deps compile

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The editable install itself compiles nothing (YUQING_PURE_PYTHON=1): `compile` builds the Cython modules listed in
# setup.py in place, incrementally (objects kept in build/), and runs before the service, the tests and the benchmarks.
$(STAMP): pyproject.toml setup.py | $(BIN)/python
	YUQING_PURE_PYTHON=1 $(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

compile: $(STAMP)
	$(BIN)/python -W ignore setup.py --quiet build_ext --inplace --parallel 2

run: $(STAMP) compile
	mkdir -p var
	$(BIN)/yuqing serve --config $(CONFIG)

# The browser test needs Debian's Chromium and a CJK font; install them when we may (root), else the test skips.
browser-deps:
	@if ! command -v chromium >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing chromium and fonts-wqy-zenhei (Debian packages)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-wqy-zenhei >/dev/null; \
	  else echo "chromium not installed and not root: browser tests will be skipped"; fi; \
	fi

test: $(STAMP) compile browser-deps
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP) compile
	@for b in bench/bench_*.py; do echo "== $$b" >&2; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf var .pytest_cache .ruff_cache build nlp/*.c nlp/*.so
