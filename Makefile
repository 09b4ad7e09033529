# IronRoom: `make demo` and `make test` work on a fresh Debian/Ubuntu with Python 3.11+.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Servers and build tools the tests and the demo use: a real MQTT broker, pcscd with the
# vpcd virtual reader driver, what pyscard needs to build, and the PostgreSQL server the
# tracker's tests run throwaway clusters of (binaries in /usr/lib/postgresql/<ver>/bin).
DEBS := mosquitto mosquitto-clients pcscd vsmartcard-vpcd swig libpcsclite-dev postgresql
# Headless Chromium loads and prints the HTML reports in their tests; the Noto CJK fonts
# render their Chinese (without them a page prints boxes).
DEBS += chromium fonts-noto-cjk
PYTEST_ARGS ?=

.PHONY: install debs demo test lint bench clean

install: debs $(VENV)/.installed

debs:
	@sh deploy/scripts/install-debs.sh $(DEBS)

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "IronRoom needs Python 3.11 or newer; set PYTHON=python3.11")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[pcsc,pi,pi-legacy,demo,test]'
	@touch $@

demo: install
	$(VENV)/bin/ironroom demo --port 8000

test: install
	@$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: that is a failure here" >&2; exit 1; fi; \
	exit $$rc

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy protocol
	$(VENV)/bin/mypy --ignore-missing-imports firmware_bridge devices/rfid
	$(VENV)/bin/mypy tracker/domain
	$(VENV)/bin/mypy --ignore-missing-imports tracker

# Each benchmark prints one JSON line. BENCH_ARGS (e.g. --quick) goes to both; the
# tracker's against PostgreSQL: .venv/bin/python bench/ingest.py --postgres (or --db URL).
BENCH_ARGS ?=

bench: install
	$(PY) bench/controller.py $(BENCH_ARGS)
	$(PY) bench/ingest.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .ironroom-sim .ironroom-demo
