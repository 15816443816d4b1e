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

# The report's chart library comes from the npm registry at install time and is served by the analyzer (no CDN).
$(STAMP): pyproject.toml services/analyzer/report/package-lock.json
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[dev]'
	npm ci --prefix services/analyzer/report --no-audit --no-fund
	touch $(STAMP)

clean: down
	rm -rf .run
