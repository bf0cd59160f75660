# The two commands a newcomer needs (see README.md):
#   make run    set everything up, then run the exchange's services in the foreground
#   make test   set everything up, then lint, type-check and run the whole test suite
SHELL := /bin/bash
BIN := .venv/bin

.PHONY: setup lock upgrade up down status run lint layers browser docs test

# Installs exactly what uv.lock pins (uv sync --frozen), with the machine's Python; then the
# fonts, the browser libraries and the e-invoice validator (phive and the official rules).
setup:
	infra/bootstrap.sh
	infra/fonts.sh install >/dev/null
	infra/web.sh install
	infra/einvoice-validator.sh install

# Fails when pyproject.toml and uv.lock disagree (after editing dependencies: infra/bootstrap.sh add).
lock:
	infra/bootstrap.sh check

# Re-resolves every dependency to its newest allowed release and rewrites uv.lock.
upgrade:
	infra/bootstrap.sh upgrade

up: setup
	$(BIN)/marketplace up

down:
	@if [[ -x $(BIN)/marketplace ]]; then $(BIN)/marketplace down; \
	else infra/kafka.sh down; infra/postgres.sh down; fi
	@infra/kafka-cluster.sh down 2>/dev/null || true
	@infra/faults.sh down 2>/dev/null || true

status: setup
	$(BIN)/marketplace status

# With a local SMTP sink: every e-mail lands in .local/mail/inbox/ (docs/operators/mail.md).
run: up
	MARKETPLACE_MAIL_SINK=$${MARKETPLACE_MAIL_SINK:-true} $(BIN)/marketplace run all --simulate 1

lint: setup lock
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

# The layers as the imports draw them (the contract is in pyproject.toml, checked by make lint).
layers: setup
	$(BIN)/python -m marketplace.app.layers

# Debian's Chromium, for the end-to-end tests of the web pages.
browser:
	infra/chromium.sh install >/dev/null

# The documentation site (docs/), with warnings as errors: a broken reference or a page missing
# from a table of contents fails the build.
docs: setup
	$(BIN)/sphinx-build -W --keep-going -q -b html docs docs/_build/html

test: up lint browser docs
	$(BIN)/pytest
