"""All configuration, read once from SYNC_* environment variables and passed in."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.dev_stack import read_stack, stack_path

log = logging.getLogger("core.settings")
MIN_HS256_KEY_BYTES = 32


def require_hs256_key(secret: str) -> str:
    """The key if it is long enough for HS256 (RFC 7518: at least the hash size), else exit."""
    if not secret:
        raise SystemExit("SYNC_JWT_SECRET is not set: tokens cannot be signed or verified")
    if len(secret.encode()) < MIN_HS256_KEY_BYTES:
        raise SystemExit(
            f"SYNC_JWT_SECRET is {len(secret.encode())} bytes; HS256 needs at least "
            f"{MIN_HS256_KEY_BYTES} (make one with `openssl rand -base64 32`)"
        )
    return secret


class Settings(BaseSettings):
    """Validated settings; every process builds one and hands it down."""

    model_config = SettingsConfigDict(env_prefix="SYNC_", extra="ignore")

    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL (postgresql+psycopg://...); unset: embedded"
    )
    kafka_bootstrap: str | None = Field(
        default=None, description="Kafka bootstrap servers host:port; unset: embedded Tansu"
    )
    kafka_topic: str = Field(default="sync-events", min_length=1, max_length=249)
    kafka_partitions: int = Field(default=8, ge=1, le=1000)
    kafka_replication_factor: int = Field(
        default=1, ge=1, le=32, description="Replicas of each partition when the topic is created"
    )
    kafka_min_insync_replicas: int | None = Field(
        default=None, ge=1, description="The topic's min.insync.replicas; unset: broker default"
    )
    kafka_max_message_bytes: int = Field(
        default=1_000_000,
        ge=10_000,
        description="Largest record the relay sends (the topic's max.message.bytes)",
    )
    kafka_read_topic_limit: bool = Field(
        default=True,
        description="The relay reads the topic's max.message.bytes from the broker",
    )
    jwt_secret: SecretStr = Field(
        default=SecretStr(""),
        description="HS256 key (32+ bytes) for dev user tokens and the worker's report tokens",
    )
    jwt_jwks_url: str | None = Field(
        default=None, description="Identity provider's JWKS; set: user tokens are RS256/ES256"
    )
    jwt_issuer: str | None = Field(default=None, description="Required `iss` of user tokens")
    jwt_audience: str | None = Field(default=None, description="Required `aud` of user tokens")
    jwt_leeway_seconds: float = Field(
        default=0, ge=0, le=300, description="Clock skew allowed on exp, nbf and iat"
    )
    jwt_jwks_cache_seconds: float = Field(default=300, gt=0, description="JWKS cache lifetime")
    jwt_cache_size: int = Field(
        default=10_000, ge=0, description="Verified tokens remembered per API process (0: none)"
    )
    jwt_cache_seconds: float = Field(
        default=60, gt=0, le=3600, description="Longest a verified token is remembered"
    )
    max_report_body_bytes: int = Field(
        default=64 * 1024, ge=1024, le=1024 * 1024, description="Largest worker report body"
    )
    max_body_bytes: int = Field(
        default=1024, ge=0, description="Largest body of any other request (they take none)"
    )
    request_body_seconds: float = Field(
        default=10, gt=0, le=300, description="Longest a request's body may take to arrive (408)"
    )
    request_head_seconds: float = Field(
        default=10, gt=0, le=300, description="Longest a request's line and headers may take (408)"
    )
    max_header_count: int = Field(
        default=100, ge=10, le=10_000, description="Most header fields in a request (431)"
    )
    max_header_bytes: int = Field(
        default=16 * 1024,
        ge=9 * 1024,
        le=1024 * 1024,
        description="Largest request line and headers (431)",
    )
    reuse_window_seconds: float = Field(default=1800, gt=0, description="Lease length of a task")
    lock_timeout_ms: int = Field(default=3000, ge=1)
    conflict_retries: int = Field(default=3, ge=0, le=20)
    db_pool_size: int = Field(default=20, ge=1, le=200)
    user_active_requests: int = Field(
        default=4,
        ge=0,
        description="Requests of one user handled at once per API process; more wait (0: off)",
    )
    user_active_requests_alone: int = Field(
        default=64,
        ge=0,
        description="The same while no other user has sent a request to the API for 1 s",
    )
    user_requests_per_second: float = Field(
        default=200,
        ge=0,
        description="Requests of one user started per second per API process while other "
        "users are about (0: no bound)",
    )
    command_queue_limit: int = Field(
        default=1000, ge=1, description="Commands of one user that may wait in one API process"
    )
    command_transactions_max: int | None = Field(
        default=None,
        ge=1,
        description="Command transactions in flight per process; unset: 3/5 of the pool",
    )
    command_batch_max: int = Field(
        default=256, ge=1, le=10_000, description="Most commands one transaction takes"
    )
    max_event_bytes: int = Field(
        default=256 * 1024,
        ge=4096,
        description="Largest stored event envelope (at most half SYNC_KAFKA_MAX_MESSAGE_BYTES)",
    )
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=0, le=65535)
    api_workers: int = Field(
        default=1, ge=1, le=64, description="API processes sharing the port (uvicorn workers)"
    )
    retry_after_seconds: int = Field(default=1, ge=1)
    relay_batch_size: int = Field(default=500, ge=1, le=10000)
    relay_poll_seconds: float = Field(default=1.0, gt=0)
    relay_max_backoff_seconds: float = Field(default=10.0, gt=0)
    relay_standby_seconds: float = Field(default=2.0, gt=0)
    relay_exit_after_publish: bool = Field(
        default=False, description="Fault injection for tests: exit after the broker acks"
    )
    data_dir: str = Field(default=".syncctl", description="Where `syncctl dev` keeps its state")
    dev_kafka: Literal["tansu", "apache"] = Field(
        default="tansu",
        description="Broker `syncctl dev` starts when SYNC_KAFKA_BOOTSTRAP is unset: Tansu, or "
        "a local three-node Apache Kafka cluster (`syncctl dev --kafka apache`)",
    )
    api_url: str = Field(
        default="http://127.0.0.1:8000", description="Where workers send their reports"
    )
    consumer_max_poll_interval_ms: int = Field(
        default=300_000, ge=1000, description="Kafka group rebalance timeout; short on Tansu"
    )
    consumer_instance_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=249,
        description="Static group membership: this process's stable, unique id in its consumer "
        "group, so a restart within the session timeout causes no rebalance; unset: dynamic",
    )
    kafka_delivery_timeout_ms: int = Field(
        default=30_000,
        ge=1000,
        description="How long the relay's producer retries a record before the batch waits in "
        "the outbox for the next attempt; above a broker failover (about 10 s)",
    )
    projector_group: str = "sync-projector"
    worker_group: str = "sync-worker"
    webhook_group: str = "sync-webhooks"
    status_wait_max_seconds: float = Field(default=5.0, gt=0, le=30)
    stream_heartbeat_seconds: float = Field(
        default=15.0, ge=0.1, le=300, description="Quiet time before a status stream heartbeat"
    )
    stream_max_per_user: int = Field(
        default=5, ge=1, le=1000, description="Open status streams per user per API process"
    )
    worker_concurrency: int = Field(default=4, ge=1, le=256)
    worker_grace_seconds: float = Field(default=30.0, ge=0)
    worker_executor: str = Field(default="demo", description="Executor name, see consumers/")
    demo_messages: int = Field(default=200, ge=1, description="Demo executor: mailbox size")
    demo_pace: float = Field(default=50.0, gt=0, description="Demo executor: messages per second")
    mail_key: SecretStr = Field(
        default=SecretStr(""),
        description="Fernet keys for mail passwords, comma-separated: the first encrypts",
    )
    mail_allowed_hosts: str = Field(
        default="",
        description="IMAP hosts accounts may name, comma-separated; empty: any public address",
    )
    mail_ca_bundle: str = Field(
        default="",
        description="PEM file of the CAs IMAP certificates are checked against, replacing the "
        "system's; empty: the system's trust store",
    )
    mail_batch_size: int = Field(default=200, ge=1, le=5000, description="Messages per fetch")
    mail_raw_max_bytes: int = Field(
        default=1024 * 1024, ge=0, le=64 * 1024 * 1024, description="Raw message bytes kept"
    )
    mail_connect_attempts: int = Field(default=3, ge=1, le=10, description="IMAP connect tries")
    mail_timeout_seconds: float = Field(default=30.0, gt=0, le=600, description="IMAP socket")
    mail_max_connections_per_account: int = Field(
        default=2, ge=1, le=100, description="IMAP connections per account across all workers"
    )
    mail_max_connections_per_host: int = Field(
        default=0, ge=0, le=10000, description="IMAP connections per server host; 0: no cap"
    )
    mail_slot_wait_seconds: float = Field(
        default=60.0, ge=0, le=3600, description="Longest wait of a sync for a connection slot"
    )
    mail_max_backoff_seconds: float = Field(
        default=60.0, gt=0, le=3600, description="Longest wait between IMAP connection attempts"
    )
    mail_backoff_reset_seconds: float = Field(
        default=60.0, ge=0, le=3600, description="A connection this old starts the waits over"
    )
    mail_throttle_max_wait_seconds: float = Field(
        default=300.0, ge=0, le=3600, description="Most a sync waits in all for a server"
    )
    mail_report_every_seconds: float = Field(
        default=1.0, gt=0, description="Most one progress report per this many seconds"
    )
    mail_flag_walk_seconds: float = Field(
        default=1800.0,
        ge=0,
        description="Servers without CONDSTORE: least time between two walks of every flag",
    )
    mail_extensions_off: str = Field(
        default="",
        pattern=r"^[A-Za-z, -]*$",
        description="Offered IMAP extensions not to use: QRESYNC, CONDSTORE, ESEARCH, LIST-STATUS",
    )
    mail_changes_retention_seconds: float = Field(
        default=7 * 86400.0, ge=0, description="How long GET /mail/changes keeps each change"
    )
    public_url: str | None = Field(
        default=None,
        description="The API's address as browsers reach it (OAuth2 redirect URIs); "
        "unset: the address each request came to",
    )
    oauth2_return_url: str = Field(
        default="/ui/", description="Where the OAuth2 callback sends the browser when connected"
    )
    oauth2_http_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    oauth2_google_client_id: str = Field(default="", description="Google OAuth client id")
    oauth2_google_client_secret: SecretStr = Field(default=SecretStr(""))
    oauth2_microsoft_client_id: str = Field(default="", description="Microsoft Entra app id")
    oauth2_microsoft_client_secret: SecretStr = Field(default=SecretStr(""))
    oauth2_microsoft_tenant: str = Field(
        default="common", pattern=r"^[A-Za-z0-9.-]{1,100}$", description="Entra tenant"
    )
    oauth2_oidc_name: str = Field(
        default="oidc", pattern=r"^[a-z0-9-]{1,30}$", description="Generic provider's path name"
    )
    oauth2_oidc_title: str = Field(default="Other (OpenID Connect)", max_length=60)
    oauth2_oidc_discovery_url: str = Field(default="", description="OpenID discovery document")
    oauth2_oidc_client_id: str = Field(default="")
    oauth2_oidc_client_secret: SecretStr = Field(default=SecretStr(""))
    oauth2_oidc_scopes: str = Field(default="openid email offline_access")
    oauth2_oidc_login_claim: str = Field(default="email", description="Claim naming the login")
    oauth2_oidc_imap_host: str = Field(default="")
    oauth2_oidc_imap_port: int = Field(default=993, ge=1, le=65535)
    oauth2_oidc_imap_security: Literal["tls", "starttls", "none"] = Field(default="tls")
    reaper_interval_seconds: float = Field(default=30.0, gt=0)
    watch_lease_seconds: float = Field(
        default=15.0,
        ge=1,
        le=600,
        description="A watcher's hold on an account; a killed watcher's accounts are taken "
        "over within about this plus a third of it",
    )
    watch_idle_renew_seconds: float = Field(
        default=1500.0,
        gt=0,
        lt=29 * 60,
        description="IDLE is ended and issued again this often (RFC 2177: before 29 minutes)",
    )
    watch_poll_seconds: float = Field(
        default=60.0, gt=0, description="NOOP polling interval on servers without IDLE"
    )
    watch_max_backoff_seconds: float = Field(
        default=300.0, gt=0, description="Longest wait before reconnecting a watched account"
    )
    webhook_url: str | None = Field(default=None, description="Receiver of completion webhooks")
    webhook_secret: SecretStr = Field(
        default=SecretStr(""),
        description="Webhook signing secrets (whsec_...), space-separated, the current first",
    )
    webhook_legacy_headers: bool = Field(
        default=True,
        description="Also send the deprecated X-Sync-Signature headers (until 2027-06-01)",
    )
    webhook_max_backoff_seconds: float = Field(default=60.0, gt=0)
    request_log_level: Literal["DEBUG", "INFO", "WARNING"] = Field(
        default="INFO",
        description="Level of the API's line per request (logged at INFO; WARNING: none)",
    )
    log_format: Literal["text", "json"] = Field(
        default="text", description="Log lines as text or one JSON object per line"
    )
    # The standard OpenTelemetry variables, read here so a typo fails at start; the
    # exporter's own OTEL_EXPORTER_OTLP_* variables are read by the exporter.
    otel_traces_exporter: Literal["none", "otlp", "console"] = Field(
        default="none",
        validation_alias="OTEL_TRACES_EXPORTER",
        description="Span exporter; none (the default) leaves tracing off",
    )
    otel_sdk_disabled: bool = Field(default=False, validation_alias="OTEL_SDK_DISABLED")
    otel_service_name: str | None = Field(default=None, validation_alias="OTEL_SERVICE_NAME")

    @model_validator(mode="after")
    def _limits_fit(self) -> Settings:
        if (self.command_transactions_max or 0) > self.db_pool_size:
            raise ValueError("SYNC_COMMAND_TRANSACTIONS_MAX cannot exceed SYNC_DB_POOL_SIZE")
        if (self.kafka_min_insync_replicas or 0) > self.kafka_replication_factor:
            raise ValueError(
                "SYNC_KAFKA_MIN_INSYNC_REPLICAS cannot exceed SYNC_KAFKA_REPLICATION_FACTOR: "
                "the broker would refuse every acks=all write"
            )
        if self.max_event_bytes * 2 > self.kafka_max_message_bytes:
            raise ValueError(
                "SYNC_MAX_EVENT_BYTES must be at most half SYNC_KAFKA_MAX_MESSAGE_BYTES: "
                "an event the broker refuses would be dead-lettered, not delivered"
            )
        if self.oauth2_oidc_client_id and not (
            self.oauth2_oidc_discovery_url and self.oauth2_oidc_imap_host
        ):
            raise ValueError(
                "SYNC_OAUTH2_OIDC_CLIENT_ID needs SYNC_OAUTH2_OIDC_DISCOVERY_URL and "
                "SYNC_OAUTH2_OIDC_IMAP_HOST: where users sign in, and which IMAP server "
                "takes the tokens"
            )
        return self

    def traces_exporter(self) -> str:
        """The span exporter to install; 'none' when tracing is off."""
        return "none" if self.otel_sdk_disabled else self.otel_traces_exporter

    def transactions_in_flight(self) -> int:
        """Command transactions per process; the rest of the pool stays free for reads."""
        return self.command_transactions_max or max(1, self.db_pool_size * 3 // 5)

    def require_database_url(self) -> str:
        """The database URL (else the running `syncctl dev`'s), or a clear error."""
        url = self.database_url or self._from_dev_stack("SYNC_DATABASE_URL")
        if not url:
            raise SystemExit("SYNC_DATABASE_URL is not set (or run `syncctl dev`)")
        return url

    def require_jwt_secret(self) -> str:
        """The HS256 key, or a clear error: a short key can be brute-forced from one token."""
        return require_hs256_key(self.jwt_secret.get_secret_value())

    def require_mail_key(self) -> str:
        """The Fernet key(s) for mail account passwords, or a clear error."""
        key = self.mail_key.get_secret_value()
        if not key:
            raise SystemExit(
                "SYNC_MAIL_KEY is not set: mail passwords cannot be stored or read (make one "
                "with `python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())'`)"
            )
        return key

    def require_kafka_bootstrap(self) -> str:
        """The Kafka bootstrap servers (else the running `syncctl dev`'s), or a clear error."""
        bootstrap = self.kafka_bootstrap or self._from_dev_stack("SYNC_KAFKA_BOOTSTRAP")
        if not bootstrap:
            raise SystemExit("SYNC_KAFKA_BOOTSTRAP is not set (or run `syncctl dev`)")
        return bootstrap

    def _from_dev_stack(self, variable: str) -> str | None:
        """What the `syncctl dev` running on SYNC_DATA_DIR uses, said in the log; else None."""
        stack = read_stack(Path(self.data_dir))
        if stack is None:
            return None
        log.info(
            "%s is not set: using the `syncctl dev` stack of process %d (%s)",
            variable,
            stack.pid,
            stack_path(Path(self.data_dir)),
        )
        return stack.database_url if variable == "SYNC_DATABASE_URL" else stack.kafka_bootstrap
