# Taxonomy Curator. The two commands of the README, and the lint CI runs first:
#   make run    install into .venv, ingest $(CATALOG_DIR), embed/train/predict (each skipped when unchanged since the last
#               start: `core start`, one process), serve :8501 while discover/map/review fill in
#   make test   install what the tests need (venv, Chromium, PostgreSQL), start PostgreSQL, run the suite
#   make lint   ruff, and the import-linter layering contracts of pyproject.toml
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CATALOG_DIR ?= ../shared/data/fashion-catalog
PORT ?= 8501
# the interface `make serve` listens on: this machine only (ADDRESS=0.0.0.0 to share it; every page is behind sign-in)
ADDRESS ?= 127.0.0.1
export CATALOG_DIR

STREAMLIT = $(BIN)/streamlit run app/main.py --server.address $(ADDRESS) --server.port $(PORT) --server.headless true --browser.gatherUsageStats false

.PHONY: install system-deps run start ingest models fill-in serve test lint bench clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements.txt 2>&1 | grep -v "is ignored: it is neither" || true
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps -e . 2>&1 | grep -v "is ignored: it is neither" || true
	$(BIN)/python -c "import torch, streamlit, sqlalchemy, alembic, pandas, timm, open_clip, umap, hdbscan, faiss"
	test -x $(BIN)/curator && cd / && $(abspath $(BIN))/python -c "import app, core.config, db.session"  # the editable install
	touch $(STAMP)

install: $(STAMP)

system-deps:
	bash .ci/system-deps

ingest: install
	$(BIN)/python -m core db upgrade
	$(BIN)/python -m core ingest --catalog "$(CATALOG_DIR)"

models: ingest
	$(BIN)/python -m core embed
	$(BIN)/python -m core train
	$(BIN)/python -m core predict

fill-in: models  # discovery (Footwear > Shoes), the catalogue map and label scores: a background job behind the app
	$(BIN)/python -m core fill-in --background

serve: install
	$(BIN)/python -m core users first-admin
	$(STREAMLIT)

# upgrade, ingest, embed, train, predict in one process, each skipped when its inputs are unchanged since the last start
# (core/steps/start.py); the fill-in job unless it has nothing to do; the first admin
start: install
	$(BIN)/python -m core start --catalog "$(CATALOG_DIR)"

run: start
	$(STREAMLIT)

test: install system-deps
	TEST_DATABASE_URL=$$(bash .ci/pg-start) $(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install  # both run, either failing fails: ruff, then the layering contracts of pyproject.toml
	$(BIN)/ruff check app core db pages tests benchmarks; status=$$?; $(BIN)/lint-imports || status=1; exit $$status

bench: install
	$(BIN)/python benchmarks/bench_ingest.py --catalog "$(CATALOG_DIR)"

clean:
	rm -rf data artifacts .pytest_cache
