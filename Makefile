# Two entry points: `make demo` and `make test`. Each creates its own venv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: demo test lint bench clean system-deps

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/tensafe-ops serve --demo --state-dir .tensafe-ops/demo

test: $(STAMP) system-deps
	$(BIN)/ruff check tensafe_ops exporter webhook tests bench
	$(BIN)/ruff format --check tensafe_ops exporter webhook tests bench
	$(BIN)/mypy
	$(BIN)/python -m pytest $(PYTEST_ARGS)

system-deps:
	@if [ "$$CI" = "true" ]; then ./scripts/install-system-deps.sh; fi

lint: $(STAMP)
	$(BIN)/ruff check --fix tensafe_ops exporter webhook tests bench
	$(BIN)/ruff format tensafe_ops exporter webhook tests bench

bench: $(STAMP)
	$(BIN)/python -m bench.scrape
	$(BIN)/python -m bench.sync_requests
	$(BIN)/python -m bench.memory
	$(BIN)/python -m bench.webhook_accept
	$(BIN)/python -m bench.webhook_storm
	$(BIN)/python -m bench.loop_block

clean:
	rm -rf $(VENV) .tensafe-ops .mypy_cache .pytest_cache .ruff_cache
