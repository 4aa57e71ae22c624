FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY distributor ./distributor
COPY templates ./templates
COPY web.py worker.py alembic.ini ./
RUN pip install -c constraints.txt -e . && useradd --create-home distributor \
    && mkdir -p /app/var && chown distributor /app/var
USER distributor
EXPOSE 8000
CMD ["gunicorn", "web:app", "--bind", "0.0.0.0:8000", "--workers", "4", "--worker-class", "distributor.tracking.worker.TrackingWorker", "--threads", "4", "--keep-alive", "30", "--logger-class", "distributor.gunicorn_logging.RedactingLogger"]
