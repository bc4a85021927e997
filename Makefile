# The two commands: `make run` and `make test`. Everything else here serves them.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
MANAGE := $(BIN)/python manage.py
# dcmtk and Orthanc wait ~40 ms per instance on delayed ACKs without it.
export TCP_NODELAY := 1

.PHONY: run test setup lint types migrations-check pytest clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

# The image viewer (frontend/viewer/) is bundled by Vite into static/viewer/; needs Node.js >= 20.
VIEWER_SOURCES := $(shell find frontend -type f 2>/dev/null) package.json vite.config.mjs

node_modules/.installed: package-lock.json
	npm ci --no-audit --no-fund
	touch $@

static/viewer/.built: node_modules/.installed $(VIEWER_SOURCES)
	npm run build
	touch $@

setup: $(VENV)/.installed static/viewer/.built

run: setup
	$(MANAGE) migrate --noinput
	$(MANAGE) collectstatic --noinput --verbosity 0
	$(MANAGE) seed_demo
	$(MANAGE) serve

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: setup
	$(BIN)/mypy .

migrations-check: setup
	DJANGO_SETTINGS_MODULE=portal.settings.test $(MANAGE) makemigrations --check --dry-run

pytest: setup
	$(BIN)/pytest

test: lint types migrations-check pytest

clean:
	rm -rf var/ .mypy_cache .ruff_cache .pytest_cache static/viewer node_modules
