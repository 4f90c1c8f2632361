# Two commands on a fresh clone: `make repro` (whole pipeline on the sample data), `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)
HOST ?= 127.0.0.1
PORT ?= 5000
WORKERS ?= 2

.PHONY: venv repro test serve lint format bench clean

venv: $(VENV)/.installed

# Re-installs only when the pinned dependencies change.
$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check \
		--constraint constraints.txt --editable '.[dev]'
	touch $@

repro: venv
	dvc pull data.dvc
	dvc repro

test: venv
	python -m pytest

serve: venv
	IMGCLF_HOST=$(HOST) IMGCLF_PORT=$(PORT) WEB_CONCURRENCY=$(WORKERS) \
		gunicorn --config webapp/gunicorn.conf.py 'webapp:create_app()'

lint: venv
	ruff check .
	ruff format --check .

format: venv
	ruff check --fix .
	ruff format .

bench: venv
	python -m bench.bench_prepare

clean:
	rm -rf prepared models dvclive .pytest_cache .ruff_cache
