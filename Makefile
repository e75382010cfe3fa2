# Lanyard: `make run` (the whole stack) and `make test` (every test) do all set-up themselves.
SHELL := /bin/bash
.DEFAULT_GOAL := help
UV := deploy/uv.sh  # resolves (and installs) uv on every call, never in advance
KAFKA := deploy/kafka/kafka.sh
BOOTSTRAP ?= 127.0.0.1:29092
PYTEST_ARGS ?=
DEMO ?= 1

.PHONY: help setup apt uv check-setup kafka-fetch run demo test lint fmt contracts api-docs dlq-redrive bench soak console-screenshots \
        kafka-start kafka-stop kafka-topics kafka-groups kafka-tail redis-start redis-stop stop

help:
	@echo "make run    - start Kafka, Redis, every service and the gateway, seed the demo (Ctrl-C stops all; DEMO=0: no demo)"
	@echo "make demo   - with make run going: checkout → SSO → lock → face unlock → checkin, with a timeline"
	@echo "make test   - install what the tests need, then run lint and every test"
	@echo "make soak   - churn under every fault (kill -9, broker/Redis crash, RP down, broker cut), then the checker (SOAK_MINUTES, default 10)"
	@echo "make lint | contracts | api-docs | bench | console-screenshots | kafka-topics | kafka-groups | kafka-tail TOPIC=... | dlq-redrive TOPIC=..."

apt:  ## Debian packages: Redis, nginx, kcat (readiness probe and operator tool), chromium (console browser tests)
	@missing=""; for p in redis-server nginx kcat jq chromium; do command -v $$p >/dev/null || [ -x /usr/sbin/$$p ] || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "apt: installing$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server nginx-light kcat jq chromium >/dev/null; \
	fi

uv:  ## bytecode compiled once here: with PYTHONDONTWRITEBYTECODE set, every service start compiled ~1,000 modules (~2.5 s CPU)
	@$(UV) sync -q --frozen --compile-bytecode
	@$(UV) run --no-sync python -m compileall -q -j 0 libs/*/src services/*/src >/dev/null

kafka-fetch:
	@$(KAFKA) fetch

setup: apt uv kafka-fetch

run: setup  ## DEMO=0 skips the demo enterprise and rover-demo
	@DEMO=$(DEMO) deploy/run.sh

demo: uv  ## against a running `make run`: the whole story with a timeline (exit 1 if an effect is missing)
	@$(UV) run --no-sync lanyard demo play

lint: uv
	$(UV) run --no-sync ruff check .
	$(UV) run --no-sync lint-imports

fmt: uv
	$(UV) run --no-sync ruff check --fix .
	$(UV) run --no-sync ruff format .

check-setup:  ## the set-up path works with uv absent from PATH (issue 10)
	@deploy/check-setup.sh

test: setup check-setup lint
	$(UV) run --no-sync pytest $(PYTEST_ARGS)

SOAK_MINUTES ?= 10
soak: setup  ## the long soak: private broker + Redis + stack, every fault in turn then together; writes bench/results/soak.json only when clean
	$(UV) run --no-sync python -m lanyard.harness.soak --minutes $(SOAK_MINUTES) $(SOAK_ARGS)

console-screenshots: setup  ## screenshots of every main console page, to docs/console/ (real stack, headless chromium)
	LANYARD_CONSOLE_SCREENSHOTS=$(CURDIR)/docs/console $(UV) run --no-sync pytest -q -p no:cacheprovider \
	  tests/e2e/test_console.py::test_screenshots_of_every_main_page

contracts: uv
	$(UV) run --no-sync python -m lanyard.contracts.schema export libs/contracts/schemas

api-docs: uv  ## regenerate docs/api (OpenAPI per service, AsyncAPI for the topics); make test checks for drift
	$(UV) run --no-sync python -m lanyard.cli.apidocs write

dlq-redrive:  ## send a dead-letter topic's records back to their source: make dlq-redrive TOPIC=lanyard.directory.v1.dlq
	@test -n "$(TOPIC)" || { echo "usage: make dlq-redrive TOPIC=<topic>.dlq [ARGS=--dry-run]"; exit 2; }
	@$(UV) run --no-sync lanyard ops dlq-redrive $(TOPIC) --bootstrap $(BOOTSTRAP) $(ARGS)

bench: setup  ## every benchmark (~45 min on a quiet machine), then the README rows (bench.report); needs wrk and node/npm for the token-endpoint peer
	@command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
	$(UV) run --no-sync python -m bench

kafka-start: kafka-fetch
	@$(KAFKA) start
kafka-stop:
	@$(KAFKA) stop
redis-start: apt
	@deploy/redis/redis.sh start
redis-stop:
	@deploy/redis/redis.sh stop

kafka-topics:  ## every topic, with partitions and configuration
	@$(KAFKA) tool org.apache.kafka.tools.TopicCommand --bootstrap-server $(BOOTSTRAP) --describe --exclude-internal
kafka-groups:  ## every consumer group with its members and lag per partition
	@$(KAFKA) tool org.apache.kafka.tools.consumer.group.ConsumerGroupCommand --bootstrap-server $(BOOTSTRAP) --describe --all-groups
kafka-tail:  ## follow a topic: make kafka-tail TOPIC=lanyard.device-sessions.v1
	@test -n "$(TOPIC)" || { echo "usage: make kafka-tail TOPIC=lanyard.device-sessions.v1"; exit 2; }
	@$(KAFKA) tool org.apache.kafka.tools.consumer.ConsoleConsumer --bootstrap-server $(BOOTSTRAP) --topic $(TOPIC) \
	  --from-beginning --property print.key=true --property print.headers=true
