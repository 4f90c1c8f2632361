# Two commands on a fresh clone: `make repro` (whole pipeline on the sample data), `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)
HOST ?= 127.0.0.1
PORT ?= 5000
WORKERS ?= 2

# Containers: podman where it is installed, docker otherwise (ENGINE=docker to choose).
ENGINE ?= $(shell command -v podman >/dev/null 2>&1 && echo podman || echo docker)
IMAGE ?= imgclf:latest
IMAGE_BUILD_FLAGS ?=

.PHONY: mutate image image-full serve-image venv repro test test-fast serve lint format docs bench bench-data bench-quality results screenshot sweep clean

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

# Everything, as CI runs it, in a shuffled order (modules and the tests in each: none may
# lean on what another left behind); the header prints the seed, and
# `python -m pytest -p random_order --random-order-seed=N` runs that order again.
test: venv
	python -m pytest --random-order

# The quick loop: everything not marked slow (about 100 s on 2 cores): no test trains a
# model. Shuffled too.
test-fast: venv
	python -m pytest -m "not slow" --random-order

# Mutation testing of the modules where a silent mistake costs users most (slow: not part of
# `make test`): killed / survived / equivalent per module, written into docs/development.md.
mutate: venv
	python scripts/mutate.py --docs

# The README's results table, from `dvc metrics show` of the current run.
results: venv
	python scripts/results_table.py

# docs/parameters.md, from the params schema and params.yaml.
docs: venv
	python scripts/params_table.py

# docs/page.png and docs/review.png, the pictures of the web page and the review page
# (need Debian's chromium).
screenshot: venv
	python scripts/page_screenshot.py
	python scripts/review_screenshot.py

serve: venv
	IMGCLF_HOST=$(HOST) IMGCLF_PORT=$(PORT) WEB_CONCURRENCY=$(WORKERS) \
		gunicorn --config webapp/gunicorn.conf.py 'webapp:create_app()'

# The web app's container image, with models/best copied in (run `make repro` first):
# onnxruntime, no TensorFlow. `make image-full`: imgclf:full, with TensorFlow.
image:
	test -d models/best || { echo "models/best/ not found: run make repro first" >&2; exit 2; }
	$(ENGINE) build $(if $(filter podman,$(ENGINE)),--format docker,) $(IMAGE_BUILD_FLAGS) --tag $(IMAGE) .

image-full:
	$(MAKE) image IMAGE=imgclf:full IMAGE_BUILD_FLAGS="$(IMAGE_BUILD_FLAGS) --build-arg EXTRAS=pipeline"

# Serve it on $(HOST):$(PORT), with models/ mounted read-only over the copy: the folder that
# holds the export, since `dvc repro` replaces models/best itself by a rename.
serve-image:
	$(ENGINE) run --rm --name imgclf -p $(HOST):$(PORT):5000 \
		-v $(CURDIR)/models:/models:ro $(IMAGE)

lint: venv
	ruff check .
	ruff format --check .

format: venv
	ruff check --fix .
	ruff format .

bench: venv
	python -m bench.bench_prepare

# The real photos and Fashion-MNIST images bench-quality builds its cases from.
bench-data:
	@test -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz \
		&& test -f /usr/share/backgrounds/mate/nature/Wood.jpg \
		&& test -d /usr/share/games/pysiogame/res/images/art4apps/animals \
		|| $(if $(filter 0,$(shell id -u)),,sudo) apt-get install -y dataset-fashion-mnist mate-backgrounds pysiogame

# Default recipe vs the tutorial reference network: accuracy, time, memory (about 10 min).
bench-quality: venv bench-data
	python -m bench.bench_quality

# A grid of params through DVC's queue, JOBS workers, the best applied (docs/experiments.md):
# make sweep SET="cnn.learning_rate=0.001,0.003 cnn.dropout=0.2,0.4" JOBS=2
sweep: venv
	python scripts/sweep.py $(foreach setting,$(SET),-S $(setting)) -j $(or $(JOBS),2)

clean:
	rm -rf prepared models dvclive .pytest_cache .ruff_cache
