# Two commands on a fresh machine with Python 3.11+, git and make:
#   make serve   # GraphiQL at http://127.0.0.1:8000/graphql
#   make test
PYTHON ?= python3
UV_VERSION := 0.13.8
UV := .uv/bin/uv
VENV := .venv
# Never download a Python: use the one this machine has.
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: install serve test lint format seed bench clean

$(UV):
	$(PYTHON) -m venv .uv
	.uv/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.installed: uv.lock pyproject.toml | $(UV)
	$(UV) sync --frozen --python $(PYTHON)
	touch $@

install: $(VENV)/.installed

serve: install
	$(VENV)/bin/aperture serve

seed: install
	$(VENV)/bin/aperture seed --edges ../shared/data/social-graphs/socfb-Reed98.edges

# One pytest worker per core, each with embedded servers of its own, tests handed out one
# at a time (4 min 28 s on 2 cores; keeping a file's tests together took 4 min 49 s).
# External servers are shared by every worker, and each test empties them: one worker then.
TEST_WORKERS := $(if $(APERTURE_DATABASE_URLS)$(APERTURE_REDIS_URL)$(APERTURE_S3_ENDPOINT_URL),0,auto)
test: install
	$(VENV)/bin/pytest -n $(TEST_WORKERS) --dist load

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .
	$(VENV)/bin/lint-imports

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: install
	$(UV) sync --frozen --python $(PYTHON) --group bench
	$(VENV)/bin/python -m bench.social_core
	$(VENV)/bin/python -m bench.feed
	$(VENV)/bin/python -m bench.edge
	$(VENV)/bin/python -m bench.layering
	$(VENV)/bin/python -m bench.read_path
	$(VENV)/bin/python -m bench.media_pipeline
	$(VENV)/bin/python -m bench.media

clean:
	rm -rf $(VENV) .uv .aperture-test
