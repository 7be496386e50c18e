# gridloop — the two commands a newcomer needs: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
TOOLS := .tools
UV := $(TOOLS)/bin/uv
UV_VERSION := 0.13.8
RUN := $(UV) run --frozen

.PHONY: run test lint typecheck unit schemas bench profile deploy-check nats-config images env clean

$(UV):
	@$(PYTHON) -m venv $(TOOLS)
	@$(TOOLS)/bin/pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

.venv/.synced: $(UV) uv.lock pyproject.toml libs/*/pyproject.toml services/*/pyproject.toml
	@$(UV) sync --frozen --python $(PYTHON)
	@touch $@

env: .venv/.synced ## create the environment from the lock file

run: env ## start NATS, PostgreSQL and the five services with the demo city
	@$(RUN) python -m gridloop_devkit.launcher --state-dir .run

lint: env
	@$(RUN) ruff check .
	@$(RUN) ruff format --check .

# mypy takes either packages (-p) or paths, not both: the installed packages first, then the
# tests, the Python examples and the benchmark by path (named from the repository root:
# explicit_package_bases).
typecheck: env
	@$(RUN) mypy $(foreach p,$(wildcard libs/*/src/* services/*/src/*),-p $(notdir $(p)))
	@$(RUN) mypy $(wildcard libs/*/tests services/*/tests services/*/examples/*.py) tests bench

unit: env ## tests only
	@$(RUN) pytest

# Two pytest workers (TEST_WORKERS): each module on one worker, the chaos suite on one in turn
# (gridloop_devkit.testing.pytest_xdist_make_scheduler).
TEST_WORKERS ?= 2
test: lint typecheck deploy-check ## lint + types + deploy check + every test against a real NATS and PostgreSQL
	@$(RUN) pytest -n $(TEST_WORKERS) --dist loadgroup --no-loadscope-reorder --durations=25

schemas: env ## export JSON Schema and AsyncAPI into schemas/, and the contract page the console serves
	@$(RUN) python tools/export_schemas.py

profile: env ## the loop at saturation with py-spy on every service; CPU per closed loop, hot spots
	@$(RUN) python -m bench.profile

bench: env ## measure the whole system; results in bench/results/latest.json
	@$(RUN) python -m bench

deploy-check: env ## render deploy/ overlays, validate, cross-check settings and the NATS config
	@$(RUN) python tools/deploy_check.py

nats-config: env ## regenerate NATS users/permissions from the city's departments and sources
	@$(RUN) python tools/gen_nats_config.py

images: ## the service image (one image, five commands)
	docker build -t gridloop:0.1.0 .

clean:
	rm -rf .run .venv $(TOOLS) .pytest_cache .mypy_cache .ruff_cache
