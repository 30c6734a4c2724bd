FROM python:3.11-slim
WORKDIR /srv/gpuledger
COPY pyproject.toml README.md ./
COPY app ./app
COPY agent ./agent
COPY migrations ./migrations
RUN pip install --no-cache-dir .
EXPOSE 8000
CMD ["gpuledger", "serve", "--host", "0.0.0.0", "--port", "8000"]
