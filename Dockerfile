# Tsunagu in production: gunicorn as a non-root user, on PostgreSQL, migrating at start.
#   docker build -t tsunagu .
#   docker run -p 8000:8000 -e DATABASE_URL=postgresql+psycopg://user:pass@db/tsunagu \
#     -e SECRET_KEY=... -e TOOL_BASE_URL=https://tsunagu.example.jp tsunagu
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TSUNAGU_PRODUCTION=1 \
    HOST=0.0.0.0 \
    PORT=8000 \
    WEB_CONCURRENCY=2 \
    INSTANCE_DIR=/app/instance \
    CONTENT_DIR=/app/content

WORKDIR /app
RUN useradd --create-home --uid 10001 tsunagu

COPY pyproject.toml README.md alembic.ini babel.cfg ./
COPY lti_tool ./lti_tool
COPY migrations ./migrations
COPY content ./content
# Compile the translations before installing, so the .mo files ship in the package.
RUN pip install "babel>=2.14" \
    && pybabel compile -d lti_tool/translations \
    && pip install . \
    && mkdir -p /app/instance && chown tsunagu:tsunagu /app/instance

USER tsunagu
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s \
  CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ['PORT'], timeout=4)"

# `serve` applies migrations, makes sure a signing key exists, then execs gunicorn.
CMD ["lti-tool", "serve"]
