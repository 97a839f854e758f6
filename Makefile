# Two commands from a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.txt | cksum | cut -d' ' -f1)

.PHONY: demo test lint bench-ingest bench-reasons bench-recommend bench-support bench-api bench-load bench-uplift clean

$(STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python manage.py migrate --verbosity 0
	$(BIN)/python manage.py demo
	$(BIN)/python manage.py demo_campaigns
	$(BIN)/python manage.py demo_support
	@echo
	@echo "The admin: $(BIN)/python manage.py runserver, then open http://127.0.0.1:8000/admin/ with one of these logins:"
	@$(BIN)/python manage.py create_demo_users
	@echo "The schedules (hourly scoring, weekly training, ticket escalation, helpdesk retries): run"
	@echo "$(BIN)/python manage.py run_schedules beside runserver, in a second terminal; Ctrl-C stops it."

# The browser tests drive Debian's Chromium (Playwright cannot download its own browser here).
.PHONY: chromium
chromium:
	@test -x /usr/bin/chromium || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	  apt-get install -y -qq --no-install-recommends chromium >/dev/null; }

# Tests run against PostgreSQL and Redis on this machine; tests marked `sqlite` run a second time against the
# embedded SQLite default; the Oscar connector's in an Oscar shop. The checks and the three passes run at once,
# each pass's output shown whole when it ends: most tests wait on a server, a worker or a browser, so together
# they keep both cores busy. pytest-xdist runs the PostgreSQL pass's modules in three processes, each with its own
# test database and Redis databases (15 down to 10, config/settings/test.py); the SQLite pass has 7 and 6.
.PHONY: check test-postgres test-sqlite test-oscar
test: $(STAMP) chromium
	@$(MAKE) --no-print-directory -j4 --output-sync=target check test-postgres test-sqlite test-oscar

check: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python manage.py makemigrations --check --dry-run

test-postgres: $(STAMP) chromium
	$(BIN)/python -m pytest -n 3 --dist loadscope

test-sqlite: $(STAMP)
	DATABASE_URL=sqlite:///$(CURDIR)/.test-sqlite3 REDIS_URL=redis://127.0.0.1:6379/7 \
	  CELERY_BROKER_URL=redis://127.0.0.1:6379/6 $(BIN)/python -m pytest -m sqlite -p no:cacheprovider

test-oscar: $(STAMP)
	$(BIN)/python -m pytest tests/oscar --ds tests.oscar.settings -p no:cacheprovider

bench-ingest: $(STAMP)
	$(BIN)/python bench/ingest.py

bench-reasons: $(STAMP)
	$(BIN)/python bench/reasons.py

bench-recommend: $(STAMP)
	$(BIN)/python bench/recommend.py

bench-support: $(STAMP)
	$(BIN)/python bench/support.py

bench-api: $(STAMP)
	$(BIN)/python bench/api.py

bench-load: $(STAMP)
	$(BIN)/python bench/load.py

bench-uplift: $(STAMP)
	$(BIN)/python bench/uplift.py

clean:
	rm -rf $(VENV) foresight.sqlite3 .test-sqlite3 media
