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

# kcat is a Kafka client we did not write: the tests check that it interoperates.
tools:
	@command -v kcat >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq kcat; \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq kcat; fi; }

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
