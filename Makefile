# mosplatform: two commands on a fresh clone: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
HOST ?= 127.0.0.1
PORT ?= 5000
PYTEST_ARGS ?=

.PHONY: demo test lint bench install install-test system-deps postgres clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip wheel setuptools

# Editable install with the demo's and the separation module's needs. torch is pinned:
# any other spec pulls the CUDA build. tinysoundfont is installed without its optional
# PyAudio dependency, which does not build here.
$(VENV)/.installed: pyproject.toml setup.py | $(VENV)/bin/python
	$(PIP) install --quiet "torch==2.13.0"
	$(PIP) install --quiet -e ".[demo,separation,postgres,parquet,fast]"
	$(PIP) install --quiet --no-deps "tinysoundfont>=0.3"
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP) install --quiet -e ".[test,demo,separation,postgres,parquet,fast]"
	touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test system-deps

# Debian packages the tests use: Chromium for browser tests, espeak-ng for trapping clips,
# ffmpeg as the independent BS.1770 loudness reference, nginx for deploy/nginx.conf.
system-deps:
	@missing=""; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v espeak-ng >/dev/null || missing="$$missing espeak-ng"; \
	command -v ffmpeg >/dev/null || missing="$$missing ffmpeg"; \
	{ command -v nginx >/dev/null || [ -x /usr/sbin/nginx ]; } || missing="$$missing nginx"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q $$missing; \
	fi

# Start the local PostgreSQL cluster when it is down.
postgres:
	@if ! pg_isready -h 127.0.0.1 -q 2>/dev/null; then \
	  echo "starting PostgreSQL"; \
	  pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start || true; \
	  for i in $$(seq 1 30); do pg_isready -h 127.0.0.1 -q && break; sleep 1; done; \
	fi

demo: install
	$(VENV)/bin/mosplatform demo --host $(HOST) --port $(PORT)

test: install-test postgres
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

lint: install-test
	$(VENV)/bin/ruff check .

# The museval/fast_bss_eval reference implementations live in their own environment
# (museval needs ffmpeg); only the SDR benchmark uses them.
.venv-bench/bin/python:
	command -v ffmpeg >/dev/null || { SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q ffmpeg; }
	$(PYTHON) -m venv .venv-bench
	.venv-bench/bin/pip install --quiet museval==0.4.1 fast_bss_eval==0.1.4

bench: install-test postgres .venv-bench/bin/python
	$(PIP) install --quiet -e ".[test,bench,demo,separation,postgres,parquet,fast]"
	$(PY) -m pytest -m slow $(PYTEST_ARGS)
	$(PY) bench/sdr.py
	$(PY) bench/report.py
	$(PY) bench/admin_progress.py
	$(PY) bench/gc_pause.py
	$(PY) bench/audio_engine.py
	$(PY) bench/audio_prep.py
	$(PY) bench/excerpt_sweep.py
	$(PY) bench/separation_rtf.py
	$(PY) bench/train_variants.py
	$(PY) bench/systems_sdr.py
	$(PY) bench/load/endpoint_cost.py 30
	$(PY) bench/load/arrival_cost.py
	$(PY) bench/load/worker_overhead.py
	$(PY) bench/load/run.py
# the goal's load as the goal words it: 330 ratings/s offered (300 and a margin)
	$(PY) bench/load/run.py --scenario 2 --rate 330

clean:
	rm -rf $(VENV) .venv-bench build dist *.egg-info test-output
