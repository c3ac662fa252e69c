PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint fuzz bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Re-install only when the project metadata changed.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Serves where CHATTER_HOST / CHATTER_PORT say (default 127.0.0.1:8000). `make run PORT=9000`
# (and HOST=...) on make's command line wins; HOST or PORT merely exported by the shell does
# not, since make would otherwise turn any such variable into a flag.
run: install
	$(BIN)/chatter db upgrade
	$(BIN)/chatter serve$(if $(filter command line,$(origin HOST)), --host $(HOST))$(if $(filter command line,$(origin PORT)), --port $(PORT))

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

# Schemathesis against the real app (fixed seed, bounded): no 5xx, nothing undocumented.
fuzz: install
	$(BIN)/python tests/fuzz/run.py $(FUZZ_ARGS)

# `make bench BENCH=turns` runs only the chat-turn benchmark (sections: turns, analytics);
# `PEER=litellm` adds the LiteLLM proxy (installed once into var/peer-litellm/);
# `SIZES=c1=200,stream=100,c16=800,c64=1200,events=100` sets the requests per phase.
bench: install
	$(BIN)/python -m bench $(BENCH)$(if $(PEER), --peer $(PEER))$(if $(SIZES), --sizes $(SIZES))

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
