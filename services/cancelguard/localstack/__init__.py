"""Kafka and Postgres as local processes, for `make up` and for the integration tests without Docker.

    from cancelguard.localstack import LocalKafka, LocalPostgres
    kafka = LocalKafka(home, port=19092, controller_port=19093); kafka.start(); ...; kafka.stop()

`stack.up()/down()/status()` drive both with defaults from the environment (see stack.py).
"""

from ._common import LocalStackError, ServiceStatus, find_free_port, port_is_free, repo_root
from .kafka import (
    CONSOLE_CONSUMER,
    CONSOLE_PRODUCER,
    PRODUCER_PERF_TEST,
    KafkaDist,
    LocalKafka,
    kafka_answers,
    new_cluster_id,
)
from .postgres import LocalPostgres, postgres_bin_dir
from .stack import StackConfig, down, fetch, local_kafka, local_postgres, main, status, up

__all__ = [
    "CONSOLE_CONSUMER",
    "CONSOLE_PRODUCER",
    "PRODUCER_PERF_TEST",
    "KafkaDist",
    "LocalKafka",
    "LocalPostgres",
    "LocalStackError",
    "ServiceStatus",
    "StackConfig",
    "down",
    "fetch",
    "find_free_port",
    "kafka_answers",
    "local_kafka",
    "local_postgres",
    "main",
    "new_cluster_id",
    "port_is_free",
    "postgres_bin_dir",
    "repo_root",
    "status",
    "up",
]
