# persona: `make demo` and `make test` do all the set-up on a fresh machine (Debian, Python 3.11,
# Java 17, Maven): a virtualenv, the package, Kafka from Maven Central, the local broker.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
LOCAL := .local
export PERSONA_DATA ?= $(abspath ../shared/data)

.PHONY: demo test unit integration venv kafka kafka-down tools worker stop clean help

help:
	@echo "make demo   broker + worker + catalog + replayed traffic, then the URLs to open"
	@echo "make test   unit and integration tests (on the real local broker)"
	@echo "make stop   stop the demo worker and the broker"

$(BIN)/persona: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

venv: $(BIN)/persona

kafka:
	scripts/kafka.sh up

kafka-down:
	scripts/kafka.sh down

# kcat is a Kafka client we did not write: the tests check that it interoperates. Debian's chromium
# runs the browser tests (Playwright drives it; it downloads no browser of its own).
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
tools:
	@missing=""; command -v kcat >/dev/null || missing="kcat"; \
	  command -v chromium >/dev/null || missing="$$missing chromium"; \
	  if [ -n "$$missing" ]; then $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq $$missing; fi

worker: venv kafka
	@scripts/demo.sh worker

demo: venv kafka
	@scripts/demo.sh all

stop:
	-@scripts/demo.sh stop
	scripts/kafka.sh down

unit: venv
	$(BIN)/pytest tests/unit -q

test: venv tools kafka
	$(BIN)/pytest tests -q -ra

clean: stop
	rm -rf $(LOCAL) $(VENV) *.egg-info
