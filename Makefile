# sre.ops: `make demo` and `make test` do all the set-up on a fresh Debian/Ubuntu machine (as root).
SHELL := /bin/bash
.DEFAULT_GOAL := help

ROOT := $(abspath .)
VENV := $(ROOT)/.venv
BUILD := $(ROOT)/.build
COLLECTIONS := $(BUILD)/collections
INSTALLED := $(COLLECTIONS)/ansible_collections/sre/ops
VERSION := $(shell sed -n 's/^version: *//p' galaxy.yml)
TARBALL := $(BUILD)/dist/sre-ops-$(VERSION).tar.gz

export PATH := $(VENV)/bin:$(PATH)
export SREOPS_COLLECTIONS_PATH := $(COLLECTIONS)
export SREOPS_FLEET_DIR ?= $(ROOT)/.fleet
export SREOPS_RELEASES := $(BUILD)/releases
export ANSIBLE_COLLECTIONS_PATH := $(COLLECTIONS)
export SREOPS_LOG_DIR := $(BUILD)/logs
export SREOPS_TARBALL := $(TARBALL)
export SREOPS_VENVS_DIR := $(ROOT)
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help bootstrap build releases demo test sanity lint unit integration molecule pytest fleet-up fleet-down clean \
	ee docs galaxy compat docker-down

help:
	@echo "make demo   - install what is needed, start the test fleet, run the demo, tear it down"
	@echo "make test   - install what is needed, then sanity, lint, unit, integration and molecule"
	@echo "make fleet-up / fleet-down - keep a fleet running to experiment (see README)"
	@echo "make ee     - build the execution environment image (docker engine and base image made locally)"
	@echo "make docs   - the collection's documentation as HTML (antsibull-docs) in .build/docs"

bootstrap:
	@scripts/bootstrap 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)

# The tests run against the installed collection, so a packaging mistake fails them.
build: bootstrap
	@rm -rf $(BUILD)/dist $(COLLECTIONS)
	@ansible-galaxy collection build --force --output-path $(BUILD)/dist . >/dev/null
	@ansible-galaxy collection install --offline --force -p $(COLLECTIONS) $(TARBALL) >/dev/null
	@# ansible-test lists files through git: give the installed copy its own index, so it tests exactly
	@# what was packaged instead of finding this checkout's .git (where .build is ignored).
	@cd $(INSTALLED) && git init -q && git add -A
	@echo "build: installed $(notdir $(TARBALL)) into $(COLLECTIONS)"
	@$(MAKE) --no-print-directory releases

releases:
	@tests/fleet/fleet releases --output $(SREOPS_RELEASES) >/dev/null
	@echo "build: demo releases in $(SREOPS_RELEASES)"

demo: build
	@cd $(INSTALLED) && scripts/demo

test: build
	@cd $(INSTALLED) && python tests/run_checks.py

sanity lint unit integration molecule galaxy compat: build
	@cd $(INSTALLED) && python tests/run_checks.py $@

# One test file or test while developing: make pytest ARGS="tests/unit/fleet/test_core.py -k address -x"
pytest: build
	@cd $(INSTALLED) && python -m pytest -p no:cacheprovider $(ARGS)

# The execution environment of meta/execution-environment.yml with this build of the collection in it. Starts
# a docker engine of its own if none answers (stop it with make docker-down); images are cached by content.
ee: build
	@python tests/utils/docker_engine.py ee $(TARBALL) $(BUILD)/ee

docker-down:
	@python tests/utils/docker_engine.py stop

docs: build
	@cd $(INSTALLED) && python tests/run_checks.py docs

fleet-up: build
	@tests/fleet/fleet up

fleet-down:
	@tests/fleet/fleet down

clean: fleet-down
	rm -rf $(BUILD) .pytest_cache
