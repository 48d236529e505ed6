# Two commands on a fresh machine with Python 3.11: `make demo` and `make test`.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

export MLFLOW_DISABLE_TELEMETRY := true
export DAGSTER_DISABLE_TELEMETRY := 1

.PHONY: demo test lint types install bench clean browser lock

$(PY):
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) (set PYTHON=...)"; exit 2; }
	$(PYTHON) -m venv $(VENV)

# The environment is the lock (exact versions + hashes, dev tools included); pyproject.toml keeps the ranges.
# torch is the CPU build (2.13.0+cpu): from pip's configured wheel folder where there is one, else PyTorch's CPU
# index; the hashes decide either way. Only when the lock's torch is not found locally is that index added.
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
$(STAMP): $(PY) pyproject.toml requirements.lock
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --require-hashes -r requirements.lock \
	  || $(PY) -m pip install --quiet --require-hashes -r requirements.lock --extra-index-url $(TORCH_INDEX)
	$(PY) -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/tradeops demo

# pre-commit's hooks are local and call this venv's tools, so .venv/bin goes first on PATH. Outside a git checkout
# (a source tarball) pre-commit cannot list files: ruff alone then.
lint: $(STAMP)
	@if [ -x $(VENV)/bin/pre-commit ] && git rev-parse --git-dir >/dev/null 2>&1; then \
	  PATH="$(abspath $(VENV))/bin:$$PATH" $(VENV)/bin/pre-commit run --all-files --show-diff-on-failure; \
	else \
	  $(VENV)/bin/ruff check src tests bench scripts && $(VENV)/bin/ruff format --check src tests bench scripts; \
	fi

# Refresh requirements.lock from pyproject.toml's ranges (Python 3.11, Linux x86_64, the dev extra included) and
# requirements-runtime.lock, the image's subset without the dev extra (constrained to the same versions).
LOCK_TORCH ?= $(if $(PIP_FIND_LINKS),--find-links $(PIP_FIND_LINKS),--find-links $(TORCH_INDEX)/torch/)
lock: $(STAMP)
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev --generate-hashes --no-strip-extras \
	  --python-version 3.11 --python-platform x86_64-manylinux_2_28 $(LOCK_TORCH) \
	  --custom-compile-command "make lock" --quiet -o requirements.lock
	$(VENV)/bin/uv pip compile pyproject.toml --generate-hashes --no-strip-extras --constraint requirements.lock \
	  --python-version 3.11 --python-platform x86_64-manylinux_2_28 $(LOCK_TORCH) \
	  --custom-compile-command "make lock" --quiet -o requirements-runtime.lock

types: $(STAMP)
	$(VENV)/bin/mypy

# Lint and type findings fail the target before any test runs. The dashboard's browser test needs Debian's
# chromium: installed here when missing and we can (root, apt-get); never fails the target (the test then skips).
# Coverage of src/tradeops (lines, in-process code; subprocesses are not traced) is printed as one total line.
test: lint types browser
	$(PY) -m pytest -n 2 --dist loadscope -q --cov=tradeops --cov-report=
	@echo "coverage of tradeops (lines): $$($(PY) -m coverage report --format=total)%"

browser:
	@if ! command -v chromium >/dev/null 2>&1 && [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get install -y -qq chromium >/dev/null 2>&1 \
	    || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq chromium >/dev/null 2>&1; } \
	    || echo "note: could not install chromium; the browser test will skip"; \
	  else echo "note: chromium missing (apt-get install chromium); the browser test will skip"; fi; \
	fi

bench: $(STAMP)
	$(PY) bench/ingest.py

clean:
	rm -rf .tradeops .pytest_cache .hypothesis
