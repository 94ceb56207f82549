# Logspace HQ: `docker build -t logspace-hq .`, then see docs/operations.md.
FROM python:3.11-slim-bookworm AS wheel
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY logspace/ logspace/
COPY index_templates/ index_templates/
COPY kibana/ kibana/
RUN pip wheel --no-cache-dir --no-deps -w /wheel .

FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system logspace \
    && useradd --system --gid logspace --home-dir /app --no-create-home logspace

WORKDIR /app
# The wheel is built in a stage of its own, with the C compiler for the ingest fast path
# (logspace/fastpath/_transcode.c) and the modules mypyc compiles (setup.py); the image gets the
# wheel only, which carries the index templates and Kibana's saved objects as package data. The
# check fails the build if the templates, the saved objects, the fast path or the compiled
# modules cannot be found in the installed package.
COPY --from=wheel /wheel/ /wheel/
RUN pip install /wheel/*.whl && rm -rf /wheel \
    && cd / && python -c "from logspace.elastic import templates; from logspace.ingest import transcoder; from logspace.ops import kibana; templates.load('check'); kibana.load('check'); assert transcoder.AVAILABLE; import logspace.ingest.answer as answer; assert answer.__file__.endswith('.so')"

USER logspace
ENV LOGSPACE_HOST=0.0.0.0 \
    LOGSPACE_PORT=4567 \
    LOGSPACE_LOG_FORMAT=json
EXPOSE 4567
# Ready: Elasticsearch answers and the index templates are in place.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('LOGSPACE_PORT', '4567') + '/health/ready', timeout=4)"]
CMD ["logspace", "serve"]
