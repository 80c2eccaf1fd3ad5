# The two commands of the README: `make demo` and `make test`. Both do all set-up first.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
SERVICES := dataset trainer registry inference metrics
PACKAGES := libs/protos libs/runtime libs/modelkit client $(addprefix services/,$(SERVICES))
STAMP := $(VENV)/.installed

.PHONY: install protos protos-check lint test demo up clean

install: $(STAMP)

$(STAMP): requirements/base.txt requirements/dev.txt requirements/triton.txt $(addsuffix /pyproject.toml,$(PACKAGES))
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -r requirements/dev.txt
	$(PIP) install -q --no-deps $(addprefix -e ,$(PACKAGES))
	test -x .venv-triton/bin/python || $(PYTHON) -m venv .venv-triton
	.venv-triton/bin/python -m pip install -q -r requirements/triton.txt
	touch $(STAMP)

protos: $(STAMP)
	$(PY) scripts/gen_protos.py

protos-check: $(STAMP)
	$(PY) scripts/gen_protos.py --check

lint: $(STAMP)
	cd protos && ../$(VENV)/bin/buf lint

test: $(STAMP) lint protos-check
	$(PY) -m pytest --durations=15

demo: $(STAMP)
	$(PY) scripts/demo.py

up: $(STAMP)
	$(VENV)/bin/loopml up

clean:
	rm -rf $(VENV) .venv-triton

# Virtualenvs of the systems bench/trainer_bench.py compares against, outside the repo (their
# xgboost pins collide with ours and with each other). Not part of `make install`.
BENCH_VENVS ?= /work/bench-venvs
.PHONY: bench-venvs
bench-venvs: requirements/bench-flaml.txt requirements/bench-autogluon.txt
	test -x $(BENCH_VENVS)/flaml/bin/python || $(PYTHON) -m venv $(BENCH_VENVS)/flaml
	$(BENCH_VENVS)/flaml/bin/python -m pip install -q -r requirements/bench-flaml.txt
	test -x $(BENCH_VENVS)/autogluon/bin/python || $(PYTHON) -m venv $(BENCH_VENVS)/autogluon
	$(BENCH_VENVS)/autogluon/bin/python -m pip install -q -r requirements/bench-autogluon.txt
