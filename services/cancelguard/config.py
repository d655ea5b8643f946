"""Settings for every service, from environment variables (prefix CANCELGUARD_).

Defaults point at the local stack that `make up` starts (Kafka on 127.0.0.1:9092, Postgres on
127.0.0.1:55432), so a developer needs to set nothing; Kubernetes sets them from a ConfigMap and Secrets.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from cancelguard.domain.policy import PolicyBook


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CANCELGUARD_", extra="ignore", frozen=True)

    kafka_bootstrap: str = "127.0.0.1:9092"
    # The DSN may carry a password: it is never logged (see `redacted_dsn`).
    postgres_dsn: str = "postgresql://postgres@127.0.0.1:55432/postgres"
    postgres_schema: str = "cancelguard"
    topic_prefix: str = "cancelguard."
    topic_partitions: int = Field(default=6, ge=1)
    topic_replication: int = Field(default=1, ge=1)

    bind_host: str = "127.0.0.1"  # Kubernetes sets 0.0.0.0
    api_port: int = 50051
    ingestion_health_port: int = 50052  # gRPC health for the non-API services (Kubernetes grpc probes)
    metrics_health_port: int = 50053
    api_metrics_port: int = 9101  # Prometheus /metrics per service; 0 turns it off
    ingestion_metrics_port: int = 9102
    metrics_metrics_port: int = 9103

    # How long a service keeps retrying Kafka/Postgres at start before it gives up and exits non-zero.
    startup_timeout_s: float = Field(default=60.0, gt=0)
    shutdown_grace_s: float = Field(default=10.0, ge=0)
    # While Kafka or Postgres is down a service stays up (NOT_SERVING) and retries; past this it exits.
    outage_limit_s: float = Field(default=300.0, gt=0)
    probe_interval_s: float = Field(default=1.0, gt=0)  # how often health asks Kafka and Postgres
    # metrics: how often Kafka's committed offsets (lag monitoring only) follow the ones in Postgres
    kafka_commit_interval_s: float = Field(default=5.0, ge=0)
    # Each batch folds an order once, however many of its events it holds, and carries fixed work (the
    # alerts' window sums): bench-metrics, 5,000 -> 10,000: 6% less service CPU and 9% less Postgres CPU
    # per event; peak memory 106 -> 130 MB.
    batch_max_records: int = Field(default=10000, ge=1)
    batch_timeout_ms: int = Field(default=200, ge=1)

    # Alerts (the alerts topic): a status is alerted once it has held this long (0: at once), so that a
    # transient overcount while late observations arrive raises nothing
    alert_grace_s: float = Field(default=0.0, ge=0)
    # our rate and Amazon's reported rate for the same window may differ by this much before an alert
    amazon_tolerance: Decimal = Field(default=Decimal("0.005"), ge=0)
    alert_sweep_s: float = Field(default=30.0, gt=0)  # how often moving windows and grace are checked
    # Retention: facts and buckets of orders purchased more than this many days ago are deleted (0: keep)
    retention_days: int = Field(default=0, ge=0)
    retention_interval_s: float = Field(default=3600.0, gt=0)
    # Signs the API's page tokens; every API replica must have the same (from a Kubernetes Secret).
    api_page_token_secret: SecretStr = SecretStr("")
    # The calling services, their token digests and seller accounts (TOML; a Kubernetes Secret file).
    api_callers_file: str = ""
    api_callers_reload_s: float = Field(default=2.0, gt=0)  # how often the file is checked for changes
    # TLS: a certificate chain and key (PEM) turn it on; a client CA too makes it mutual TLS.
    api_tls_cert_file: str = ""
    api_tls_key_file: str = ""
    api_tls_client_ca_file: str = ""
    # Load shedding: calls beyond this many at once are answered RESOURCE_EXHAUSTED at once.
    api_max_concurrent_rpcs: int = Field(default=2000, ge=1)
    api_max_watches: int = Field(default=500, ge=1)  # streams, within api_max_concurrent_rpcs
    # A call without a deadline: its statements get this long (a deadline: what is left of it).
    api_statement_timeout_s: float = Field(default=10.0, gt=0)
    api_cache_entries: int = Field(default=200_000, ge=0)  # the read cache's bound (README: what counts)
    # The event loop `cancelguard serve api` runs on: uvloop's costs a call ~15% less CPU than asyncio's own
    # (README: Speed of the API); "asyncio" is there should a library ever misbehave on uvloop.
    api_event_loop: Literal["uvloop", "asyncio"] = "uvloop"
    # cancel feeds the API submits (with an accounts file): how often getFeed is asked while Amazon
    # processes one (a feed takes minutes)
    api_feed_poll_s: float = Field(default=30.0, gt=0)

    # --- the pollers (`cancelguard serve pollers`): Amazon's APIs -> order events ---
    accounts_file: str = ""  # the seller accounts file (accounts.py); the pollers refuse to start without
    pollers_health_port: int = 50054
    pollers_metrics_port: int = 9104
    # accounts split over this many poller processes by a stable hash of the seller id; this is one of them
    poller_shards: int = Field(default=1, ge=1)
    poller_shard: int = Field(default=0, ge=0)
    poll_interval_s: float = Field(default=60.0, gt=0)  # the usage plans may stretch it (searchOrders: 180 s)
    # each poll starts this long before the last one's bound: Amazon's search index lags behind its orders
    poll_overlap_s: float = Field(default=900.0, ge=0)
    poll_backfill_days: float = Field(default=30.0, gt=0)  # where an account's first poll starts
    unshipped_report_interval_s: float = Field(
        default=3600.0, gt=0
    )  # GET_FLAT_FILE_ACTIONABLE_ORDER_DATA_SHIPPING
    performance_report_interval_s: float = Field(default=21600.0, gt=0)  # GET_V2_SELLER_PERFORMANCE_REPORT
    report_poll_interval_s: float = Field(default=30.0, gt=0)  # getReport while a report is processed

    # Per-marketplace policy overrides, JSON: {"ATVPDKIKX0DER": {"warning": "0.015"}, "*": {...}}
    policy_overrides: str = ""
    log_level: str = "INFO"

    @field_validator("postgres_schema")
    @classmethod
    def _schema_is_identifier(cls, value: str) -> str:
        if not value.replace("_", "").isalnum() or value[0].isdigit():
            raise ValueError(
                f"postgres schema must be a plain identifier (letters, digits, _), got {value!r}"
            )
        return value.lower()

    # --- topics ---

    @property
    def order_change_topic(self) -> str:
        """Raw ORDER_CHANGE notifications, as Amazon sends them (bridged from SQS/EventBridge)."""
        return f"{self.topic_prefix}order-change.raw"

    @property
    def buyer_messages_topic(self) -> str:
        """Raw buyer messages from the seller's helpdesk (JSON)."""
        return f"{self.topic_prefix}buyer-messages.raw"

    @property
    def order_events_topic(self) -> str:
        return f"{self.topic_prefix}order-events.v1"

    @property
    def dead_letter_topic(self) -> str:
        return f"{self.topic_prefix}dead-letter.v1"

    @property
    def alerts_topic(self) -> str:
        """Alerts from the metrics service (cancelguard.events.v1.Alert), keyed by seller|marketplace."""
        return f"{self.topic_prefix}alerts.v1"

    @property
    def all_topics(self) -> list[str]:
        return [
            self.order_change_topic,
            self.buyer_messages_topic,
            self.order_events_topic,
            self.dead_letter_topic,
            self.alerts_topic,
        ]

    @property
    def redacted_dsn(self) -> str:
        from urllib.parse import urlsplit, urlunsplit

        parts = urlsplit(self.postgres_dsn)
        if parts.password:
            host = parts.hostname or ""
            netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
            parts = parts._replace(netloc=netloc)
        return urlunsplit(parts)

    @property
    def policies(self) -> PolicyBook:
        # not cached: a cached value would survive `model_copy(update={"policy_overrides": ...})`
        return parse_policy_overrides(self.policy_overrides)


def parse_policy_overrides(text: str) -> PolicyBook:
    """`{"*": {...}, "<marketplace id>": {...}}` -> PolicyBook. Decimal fields take strings ("0.015")."""
    if not text.strip():
        return PolicyBook()
    from datetime import timedelta
    from decimal import Decimal

    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"CANCELGUARD_POLICY_OVERRIDES is not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ValueError("CANCELGUARD_POLICY_OVERRIDES must be a JSON object keyed by marketplace id or '*'")

    def convert(fields: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, value in fields.items():
            if name in ("threshold", "warning"):
                out[name] = Decimal(str(value))
            elif name == "self_cancel_window_minutes":
                out["self_cancel_window"] = timedelta(minutes=float(value))
            elif name == "window_days":
                out[name] = tuple(int(v) for v in value)
            elif name == "window_placement":
                from cancelguard.domain.policy import WindowPlacement

                out[name] = WindowPlacement(value)
            else:
                out[name] = value
        return out

    default = convert(raw.pop("*", {}))
    book = PolicyBook(overrides={k: convert(v) for k, v in raw.items()}, default_overrides=default)
    for marketplace_id in book.overrides:
        book.for_marketplace(marketplace_id)  # fail now, at start, on a bad id or field
    return book


def dump_policy_overrides(book: PolicyBook) -> dict[str, Any]:
    """The inverse of `parse_policy_overrides`: what the store records as a generation's policy."""
    from datetime import timedelta
    from decimal import Decimal

    from cancelguard.domain.policy import WindowPlacement

    def convert(fields: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, value in sorted(fields.items()):
            if isinstance(value, Decimal):
                out[name] = str(value)
            elif isinstance(value, timedelta):
                out["self_cancel_window_minutes"] = value.total_seconds() / 60
            elif isinstance(value, tuple):
                out[name] = list(value)
            elif isinstance(value, WindowPlacement):
                out[name] = value.value
            else:
                out[name] = value
        return out

    found = {k: convert(v) for k, v in sorted(book.overrides.items())}
    if book.default_overrides:
        found["*"] = convert(book.default_overrides)
    return found
