# Two commands for a newcomer: `make demo` and `make test`. Every target bootstraps .venv itself.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# The demo always runs on the embedded SQLite database with eager tasks, in debug mode (a local
# site a developer looks into), with the demo logins.
DEMO_ENV := DEBUG=1 DATABASE_URL=sqlite:///$(CURDIR)/db.sqlite3 CELERY_BROKER_URL= CACHE_URL= REDIS_URL= RECOMMENDER_EPOCHS=5
DEMO_USERS ?= 1500
DEMO_EVENTS ?= 120000

.PHONY: install demo demo-data test test-swapped lint bench clean

# The source tree, editable, with every extra the demo and the tests use; the exact releases of
# .ci/constraints.txt (torch) keep the install fast and offline.
EXTRAS := dev,demo,postgres,redis
PIP_INSTALL := $(PY) -m pip install --quiet --disable-pip-version-check -c .ci/constraints.txt

$(STAMP): pyproject.toml .ci/constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) -e '.[$(EXTRAS)]'
	touch $(STAMP)

install: $(STAMP)

demo-data: install
	$(DEMO_ENV) $(PY) manage.py migrate --noinput
	$(DEMO_ENV) $(PY) manage.py seed_demo --users $(DEMO_USERS) --events $(DEMO_EVENTS) --skip-if-seeded --demo-logins
	$(DEMO_ENV) $(PY) manage.py prepare_demo

demo: demo-data
	@$(DEMO_ENV) $(PY) manage.py seed_demo --print-logins
	$(DEMO_ENV) $(PY) manage.py runserver 127.0.0.1:8000

test: install
	$(PY) -m pytest
	$(MAKE) test-swapped

# The plugin's own tests again with the item model swapped to tests.testapp.Book.
test-swapped: install
	$(PY) -m pytest --ds=tests.settings_swapped -m "swappable" -p no:cacheprovider

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/lint-imports
	$(PY) -m mypy

bench: install
	$(PIP_INSTALL) -e '.[$(EXTRAS),bench]'
	$(PY) bench/run_all.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) db.sqlite3 media staticfiles
