# The two commands: `make run` and `make test`. Everything else here serves them.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
MANAGE := $(BIN)/python manage.py
# dcmtk and Orthanc wait ~40 ms per instance on delayed ACKs without it.
export TCP_NODELAY := 1
# What the tests drive besides Python: the DICOM peers, the browser, the PDF font, psql.
TEST_PACKAGES := dcmtk orthanc orthanc-dicomweb chromium fonts-dejavu-core postgresql-client

.PHONY: run test setup system-packages node lint types migrations-check pytest lock clean

# Python dependencies come from the lock files (requirements/), made from pyproject.toml's ranges
# by `make lock`; the project itself is installed on top, without resolving anything again.
$(VENV)/.installed: pyproject.toml requirements/dev.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements/dev.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

lock: $(VENV)/.installed
	$(BIN)/uv pip compile pyproject.toml --universal --python-version 3.11 -q -o requirements/base.lock
	$(BIN)/uv pip compile pyproject.toml --extra dev --universal --python-version 3.11 -q -o requirements/dev.lock

# The image viewer (frontend/viewer/) is bundled by Vite into static/viewer/; vite 7 needs Node.js
# 20.19 or later, which Debian 12's own nodejs (18) is not: it comes from NodeSource or similar.
VIEWER_SOURCES := $(shell find frontend -type f 2>/dev/null) package.json vite.config.mjs

node:
	@node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)' 2>/dev/null \
		|| { echo "Node.js >= 20.19 with npm is needed to build the viewer (found: $$(node --version 2>/dev/null || echo none))" >&2; exit 1; }

node_modules/.installed: package-lock.json | node
	npm ci --no-audit --no-fund
	touch $@

static/viewer/.built: node_modules/.installed $(VIEWER_SOURCES)
	npm run build
	touch $@

setup: $(VENV)/.installed static/viewer/.built

system-packages:
	@scripts/system-packages $(TEST_PACKAGES)

run: setup
	$(MANAGE) migrate --noinput
	$(MANAGE) collectstatic --noinput --verbosity 0
	$(MANAGE) seed_demo
	$(MANAGE) serve

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

types: setup
	$(BIN)/mypy .

migrations-check: setup
	DJANGO_SETTINGS_MODULE=portal.settings.test $(MANAGE) makemigrations --check --dry-run

pytest: setup
	$(BIN)/pytest

# The whole suite, on PostgreSQL and Redis when they answer on localhost (scripts/test-services).
test: system-packages setup
	@eval "$$(scripts/test-services)" && $(MAKE) --no-print-directory lint types migrations-check pytest

clean:
	rm -rf var/ .mypy_cache .ruff_cache .pytest_cache static/viewer node_modules
