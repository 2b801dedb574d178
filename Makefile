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

venv: $(VENV)/.installed

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

integration: system-deps venv
	$(TEST_ENV) $(VENV)/bin/pytest tests/integration -q -x

molecule: system-deps venv
	$(TEST_ENV) PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(VENV)/bin/molecule test

clean-sandbox: venv
	$(HOP) sandbox down
	$(TEST_ENV) $(HOP) sandbox down
