# The image every syncctl service of docker-compose.yml runs: `command:` picks the subcommand.
FROM python:3.12-slim
ENV PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY core ./core
COPY coordinator ./coordinator
COPY projections ./projections
COPY consumers ./consumers
RUN pip install --no-cache-dir .
USER nobody
ENTRYPOINT ["syncctl"]
