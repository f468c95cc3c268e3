# persona: `make demo` and `make test` do all the set-up on a fresh machine (Debian, Python 3.11,
# Java 17, Maven): a virtualenv, the package, Kafka from Maven Central, the local broker.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
LOCAL := .local
export PERSONA_DATA ?= $(abspath ../shared/data)

.PHONY: demo test unit integration venv kafka kafka-down tools worker stop clean help bench evaluate data

help:
	@echo "make demo   broker + worker + catalog + replayed traffic, then the URLs to open"
	@echo "make test   unit and integration tests (on the real local broker)"
	@echo "make stop   stop the demo worker and the broker"
	@echo "make bench  speed, freshness, serving, chaos and quality benchmarks (see BENCHMARKS.md)"

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

# The demo replays the shared data: say where it is missing before anything starts.
data:
	@test -f "$(PERSONA_DATA)/catalog/perfume_final.csv" || { echo "no shared data at $(PERSONA_DATA):" \
	  "put the shared folder beside the repository (../shared/data) or set PERSONA_DATA=/path/to/data" >&2; exit 2; }

worker: venv kafka
	@scripts/demo.sh worker

demo: data venv kafka
	@scripts/demo.sh all

stop:
	-@scripts/demo.sh stop
	scripts/kafka.sh down

unit: venv
	$(BIN)/pytest tests/unit -q

test: venv tools kafka
	$(BIN)/pytest tests -q -ra

# Benchmarks run on a broker of their own (port 19092), so they never touch the demo's data.
BENCH_KAFKA := PERSONA_KAFKA_PORT=19092 PERSONA_KAFKA_DIR=$(abspath $(LOCAL))/kafka-bench
bench: venv
	$(BENCH_KAFKA) scripts/kafka.sh up
	$(BIN)/python benchmarks/ingest.py --events 50000 --bootstrap 127.0.0.1:19092 --save-rate .local/bench/ingest-rate.json
	$(BIN)/python benchmarks/freshness.py --bootstrap 127.0.0.1:19092 --half-of .local/bench/ingest-rate.json
	$(BIN)/python benchmarks/freshness.py --bootstrap 127.0.0.1:19092 --rate 250
	$(BIN)/python benchmarks/noop_rate.py --bootstrap 127.0.0.1:19092 --rates 20,250,650 --topics 1,8
	$(BIN)/python benchmarks/serving.py --bootstrap 127.0.0.1:19092
	$(BIN)/python benchmarks/chaos.py --events 50000 --bootstrap 127.0.0.1:19092 --scenario kill
	$(BIN)/python benchmarks/state.py --users 100000 --bootstrap 127.0.0.1:19092 --instance-id w1
	$(MAKE) evaluate
	$(BENCH_KAFKA) scripts/kafka.sh down

evaluate: venv
	$(BIN)/persona evaluate $(PERSONA_DATA)/sessions/yoochoose-clicks-100k_train_full.txt \
	  $(PERSONA_DATA)/sessions/yoochoose-clicks-100k_test.txt --plot benchmarks/results/quality-yoochoose.png
	$(BIN)/persona evaluate $(PERSONA_DATA)/sessions/diginetica-sample-train-item-views.csv \
	  --plot benchmarks/results/quality-diginetica.png

clean: stop
	rm -rf $(LOCAL) $(VENV) *.egg-info
