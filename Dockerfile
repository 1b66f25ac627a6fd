FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY api api
COPY domain domain
COPY workers workers
COPY services services
COPY projections projections
COPY adapters adapters
COPY migrations migrations
COPY medio medio
RUN pip install --no-cache-dir ".[parquet]"
USER nobody
EXPOSE 8000
CMD ["medio", "api", "--host", "0.0.0.0"]
