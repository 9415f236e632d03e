FROM python:3.12-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY coordinator ./coordinator
COPY projections ./projections
COPY consumers ./consumers
RUN pip install --no-cache-dir .
USER nobody
ENTRYPOINT ["syncctl"]
