# One image for the four services; docker-compose.yml and deploy/k8s pick the service by command.
FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml ./
COPY services ./services
RUN pip install .
COPY gen ./gen
ENV PYTHONPATH=/app:/app/gen/python
RUN useradd --uid 10001 --no-create-home iop
USER 10001
# e.g. python -m services.scheduler
CMD ["python", "-m", "services.scheduler"]
