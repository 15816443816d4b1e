# One image for the three services and the consumer; docker-compose.yml picks the command.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY splitstream ./splitstream
COPY services ./services
COPY devstack ./devstack
COPY deploy ./deploy
RUN pip install .
RUN useradd --create-home --uid 10001 splitstream
USER splitstream
