# Two commands do all set-up on a fresh Debian 12 machine (as root):
#   make demo   boot a local sandbox host, set it up, deploy an example app
#   make test   lint, unit tests, integration tests on sandbox hosts, molecule
PYTHON ?= python3
VENV   := .venv
HOP    := $(VENV)/bin/hop
# Tests get their own inventory and history; the sandbox image cache is shared.
TEST_HOME ?= /tmp/hop3-test
# A sandbox network of their own (10.213.1.0/24) lets tests run beside a demo.
TEST_ENV := HOP3_CONFIG_DIR=$(TEST_HOME)/config HOP3_STATE_DIR=$(TEST_HOME)/state HOP3_SANDBOX_NET=1
# nginx-light lets the unit tests check rendered vhosts with `nginx -t`.
SYSTEM_PACKAGES := debootstrap systemd-container nftables iproute2 openssh-client git rsync curl nginx-light libnginx-mod-http-modsecurity modsecurity-crs

.PHONY: demo test lint unit integration molecule system-deps venv clean-sandbox

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[test]'
	touch $@

# Byte-compiles the editable package on every run (only what changed is
# rewritten): where PYTHONDONTWRITEBYTECODE is set, as on our CI machines,
# Python never writes it itself, and each `hop` would recompile ~50 modules
# (~0.1 s of CPU per command, more on a busy machine). A user's `pip install`
# compiles them at install time.
venv: $(VENV)/.installed
	@$(VENV)/bin/python -m compileall -q hop3

# Installs the Debian packages the sandbox needs, only when some are missing.
system-deps:
	@missing=$$(for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "Installing $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

demo: system-deps venv
	$(HOP) sandbox up -n 1
	$(HOP) setup -t sandbox
	$(HOP) status -t sandbox
	$(HOP) deploy examples/python-flask -t sandbox-1

test: system-deps venv lint unit integration molecule

lint: venv
	$(VENV)/bin/ruff check hop3 tests bench
	$(VENV)/bin/ruff format --check hop3 tests bench
	$(VENV)/bin/ansible-lint --profile production roles playbooks molecule

unit: venv
	$(VENV)/bin/pytest tests/unit -q

# Three pytest streams run side by side, each on sandbox hosts of its own, so
# `make test` stays within CI's time on 2 cores (most of the time of each is
# spent waiting on downloads, builds, health checks and timeouts):
# - the platform's tests (network 1), whose hosts boot bare Debian because
#   test_setup.py checks a first `hop setup`, and end with a second setup
#   that must change nothing after TLS, the WAF, the firewall and the rest;
# - the deploy-path tests that bring their own apps and failures (state,
#   failed and interrupted deploys, parallel setup of fresh hosts beside busy
#   loops, the converged image) and the backups with their own two hosts
#   (network 3): PLATFORM_APART, chosen so that this stream and the
#   platform's take about as long (the platform's was the longest by far);
# - the catalog's (tests/integration/test_catalog_*.py, network 9), which
#   install real apps.
# Their outputs follow one another; any stream failing fails the target.
# Hosts that need no first setup on bare Debian boot from the converged
# sandbox image (`hop sandbox up --image converged`: `hop setup` applied,
# cached under ~/.cache/hop3/sandbox/converged/ by a hash of roles/ and
# playbooks/). The first stream to need it builds it; the others wait for it.
# Each stream's log lists its 30 slowest tests and the reason of every skip.
PYTEST_REPORT := -q -x -ra --durations=30
CATALOG_TESTS := $(wildcard tests/integration/test_catalog_*.py)
CATALOG_ENV := HOP3_CONFIG_DIR=$(TEST_HOME)-catalog/config HOP3_STATE_DIR=$(TEST_HOME)-catalog/state HOP3_SANDBOX_NET=9
PLATFORM_APART := $(addprefix tests/integration/,test_app_state.py test_deploy_failures.py \
	test_interrupt.py test_setup_parallel.py test_converged_image.py test_backup.py)
APART_ENV := HOP3_CONFIG_DIR=$(TEST_HOME)-apart/config HOP3_STATE_DIR=$(TEST_HOME)-apart/state HOP3_SANDBOX_NET=3

integration: system-deps venv
	@mkdir -p $(TEST_HOME); \
	$(CATALOG_ENV) $(VENV)/bin/pytest $(CATALOG_TESTS) $(PYTEST_REPORT) -p no:cacheprovider \
		> $(TEST_HOME)/catalog-tests.log 2>&1 & catalog=$$!; \
	$(APART_ENV) $(VENV)/bin/pytest $(PLATFORM_APART) $(PYTEST_REPORT) -p no:cacheprovider \
		> $(TEST_HOME)/apart-tests.log 2>&1 & apart=$$!; \
	$(TEST_ENV) $(VENV)/bin/pytest tests/integration $(PYTEST_REPORT) \
		--ignore-glob='tests/integration/test_catalog_*' \
		$(addprefix --ignore=,$(PLATFORM_APART)); platform=$$?; \
	wait $$catalog; catalog_status=$$?; wait $$apart; apart_status=$$?; \
	echo "--- catalog tests (sandbox network 9) ---"; cat $(TEST_HOME)/catalog-tests.log; \
	echo "--- deploy-path tests (sandbox network 3) ---"; cat $(TEST_HOME)/apart-tests.log; \
	test $$platform -eq 0 && test $$catalog_status -eq 0 && test $$apart_status -eq 0

molecule: system-deps venv
	$(TEST_ENV) PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(VENV)/bin/molecule test

clean-sandbox: venv
	$(HOP) sandbox down
	$(TEST_ENV) $(HOP) sandbox down
	$(CATALOG_ENV) $(HOP) sandbox down
	$(APART_ENV) $(HOP) sandbox down
