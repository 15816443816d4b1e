# The README's two commands are the first two targets.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test up down status install bench-assignment clean

demo: $(STAMP)  ## set up, start the stack, run a simulated title test, print the readout
	$(PY) -m devstack demo

test: $(STAMP)  ## start a private stack, run ruff, mypy and pytest, stop it
	$(PY) -m devstack test

up: $(STAMP)  ## start Kafka, Redis and the services (idempotent)
	$(PY) -m devstack up

down: $(STAMP)  ## stop everything `up` started
	$(PY) -m devstack down

status: $(STAMP)
	$(PY) -m devstack status

install: $(STAMP)

bench-assignment: $(STAMP)  ## /v1/assign under wrk vs a bare ASGI app; SDK evaluation vs GrowthBook (needs `make up`)
	$(PY) -m bench.assignment

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

clean: down
	rm -rf .run
