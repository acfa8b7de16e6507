# Taxonomy Curator: the app on a catalogue mounted at /catalog, data (SQLite, embeddings) in /data.
#   docker build -t taxonomy-curator .
#   docker run -p 8501:8501 -v /path/to/fashion-catalog:/catalog:ro -v curator-data:/data taxonomy-curator
# Settings: DATABASE_URL (e.g. postgresql+psycopg://user:pw@host/db; default SQLite under /data),
#           CATALOG_DIR (default /catalog), CATALOG_PLATFORM (default myntra),
#           CURATOR_ADMIN_USER / CURATOR_ADMIN_PASSWORD: the first admin, made at the first start when no admin
#           exists (without them: user "admin" with a random password, printed once in `docker logs`).
# The app listens on 0.0.0.0 inside the container (asked for below: every page is behind sign-in); publish the port
# on one host interface only where that is enough, e.g. -p 127.0.0.1:8501:8501.
# On a CUDA host, replace faiss-cpu with faiss-gpu in requirements.txt; torch's wheel already carries CUDA.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DATA_DIR=/data \
    CATALOG_DIR=/catalog \
    DATABASE_URL= \
    HF_HUB_OFFLINE=1

RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 curl \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /srv/curator
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY pyproject.toml README.md ./
COPY app app
COPY core core
COPY db db
COPY pages pages
COPY .streamlit .streamlit
# the project itself, editable: imports resolve to /srv/curator (no sys.path patching), `curator` = `python -m core`
RUN pip install --no-deps -e .

RUN useradd --create-home curator && mkdir -p /data && chown curator /data
USER curator
VOLUME ["/data"]
EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=5s CMD curl -fs http://localhost:8501/_stcore/health || exit 1

# Migrate, ingest the mounted catalogue when there is one (idempotent: seconds when unchanged), make the first admin
# when none exists (its generated password is printed once, in the container's log), serve behind the sign-in.
CMD ["sh", "-c", "python -m core db upgrade && if [ -e \"$CATALOG_DIR\" ]; then python -m core ingest --catalog \"$CATALOG_DIR\"; fi && python -m core users first-admin && exec streamlit run app/main.py --server.port 8501 --server.address 0.0.0.0 --server.headless true --browser.gatherUsageStats false"]
