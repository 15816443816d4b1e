# One image for the three services and the consumer; docker-compose.yml picks the command.
# The report's chart library comes from the npm registry at build time (pinned by the lockfile).
FROM node:20-slim AS charts
WORKDIR /charts
COPY services/analyzer/report/package.json services/analyzer/report/package-lock.json ./
RUN npm ci --no-audit --no-fund

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY splitstream ./splitstream
COPY services ./services
COPY --from=charts /charts/node_modules ./services/analyzer/report/node_modules
COPY devstack ./devstack
COPY deploy ./deploy
RUN pip install .
RUN useradd --create-home --uid 10001 splitstream
USER splitstream
