# Two entry points: `make demo` and `make test`. Each creates its own venv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml admin/pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: demo test lint bench clean system-deps lock chart-files dashboard screenshots

# tensafe-admin is a distribution of its own (admin/: a pure HTTP client with few dependencies).
$(STAMP): pyproject.toml admin/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]' -e ./admin
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/tensafe-ops serve --demo --state-dir .tensafe-ops/demo

test: $(STAMP) system-deps
	$(BIN)/ruff check tensafe_ops exporter webhook operations admin tests bench deploy
	$(BIN)/ruff format --check tensafe_ops exporter webhook operations admin tests bench deploy
	$(BIN)/mypy
	$(BIN)/mypy deploy/grafana/dashboard.py
	$(BIN)/python -m pytest $(PYTEST_ARGS)

system-deps:
	@if [ "$$CI" = "true" ]; then ./scripts/install-system-deps.sh; fi

# The container image's locks, hash-pinned, for every platform and Python >= 3.11 (the image runs
# 3.12): runtime dependencies, and the build backend that turns the source into a wheel.
# Keeps the pins it can; `make lock LOCK_FLAGS=--upgrade` moves everything to the newest.
LOCK := $(BIN)/uv pip compile --universal --python-version 3.11 --generate-hashes --quiet \
	--custom-compile-command "make lock" $(LOCK_FLAGS)
lock: $(STAMP)
	$(LOCK) pyproject.toml -o requirements.txt
	$(BIN)/python -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"], sep="\n")' \
		| $(LOCK) - -o requirements-build.txt

# The Helm chart ships copies of the alert rules and dashboards (Helm reads files only inside the
# chart); tests/deploy/test_chart.py fails while they differ from deploy/rules and deploy/grafana.
CHART := deploy/helm/tensafe-ops
chart-files:
	rm -rf $(CHART)/files/rules $(CHART)/files/dashboards
	mkdir -p $(CHART)/files/rules $(CHART)/files/dashboards
	if ls deploy/rules/*.yaml >/dev/null 2>&1; then cp deploy/rules/*.yaml $(CHART)/files/rules/; fi
	if ls deploy/grafana/*.json >/dev/null 2>&1; then cp deploy/grafana/*.json $(CHART)/files/dashboards/; fi
	touch $(CHART)/files/rules/.keep $(CHART)/files/dashboards/.keep

lint: $(STAMP)
	$(BIN)/ruff check --fix tensafe_ops exporter webhook operations admin tests bench deploy
	$(BIN)/ruff format tensafe_ops exporter webhook operations admin tests bench deploy

# The Grafana dashboard is generated (a test fails when the committed JSON differs), then copied
# into the chart.
dashboard: $(STAMP)
	$(BIN)/python deploy/grafana/dashboard.py > deploy/grafana/tensafe-ops.json.new
	mv deploy/grafana/tensafe-ops.json.new deploy/grafana/tensafe-ops.json
	$(MAKE) chart-files

# The README's screenshots of the status pages (docs/img), from the demo world with a real
# Prometheus in Debian's chromium: needs chromium, prometheus and promtool.
screenshots: $(STAMP)
	$(BIN)/python -m tests.pages.screenshots docs/img

bench: $(STAMP)
	$(BIN)/python -m bench.scrape
	$(BIN)/python -m bench.sync_requests
	$(BIN)/python -m bench.memory
	$(BIN)/python -m bench.webhook_accept
	$(BIN)/python -m bench.webhook_storm
	$(BIN)/python -m bench.loop_block
	$(BIN)/python -m bench.cli_startup

clean:
	rm -rf $(VENV) .tensafe-ops .mypy_cache .pytest_cache .ruff_cache
