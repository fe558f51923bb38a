# Tsunagu — `make run` serves the tool (with the demo LMS); `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PG_TEST_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test

.PHONY: run test test-sqlite test-postgres check install install-test translations messages bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(VENV)/.installed $@

install: $(VENV)/.installed translations
install-test: $(VENV)/.installed-test translations

translations: $(VENV)/.installed
	$(BIN)/pybabel compile -d lti_tool/translations >/dev/null

# Re-extract the messages and merge them into the Japanese catalog (then translate the new ones).
messages: $(VENV)/.installed
	$(BIN)/pybabel extract -F babel.cfg -k _l -k lazy_gettext --no-location --sort-output \
		--project Tsunagu --copyright-holder Tsunagu -o lti_tool/translations/messages.pot . >/dev/null
	$(BIN)/pybabel update -i lti_tool/translations/messages.pot -d lti_tool/translations \
		--no-fuzzy-matching --ignore-obsolete >/dev/null

run: install
	TSUNAGU_DEMO=1 $(BIN)/lti-tool serve

test: install-test
	$(BIN)/python -m pytest -p no:cacheprovider
	TEST_DATABASE_URL=$(PG_TEST_URL) $(BIN)/python -m pytest -p no:cacheprovider

test-sqlite: install-test
	$(BIN)/python -m pytest

test-postgres: install-test
	TEST_DATABASE_URL=$(PG_TEST_URL) $(BIN)/python -m pytest

check: install-test
	$(BIN)/ruff check lti_tool tests bench
	$(BIN)/ruff format --check lti_tool tests bench
	$(BIN)/mypy
	cd . && DATABASE_URL=sqlite:///$(CURDIR)/instance/check.db $(BIN)/lti-tool db upgrade >/dev/null && DATABASE_URL=sqlite:///$(CURDIR)/instance/check.db $(BIN)/alembic check

bench: install-test
	$(BIN)/python bench/launch.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
