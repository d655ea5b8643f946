"""Fixtures of the deployment tests: the Docker engine `make test-deploy` starts (see support.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="session")
def docker_client() -> Iterator[Any]:
    import docker

    try:
        client = docker.from_env(timeout=30)
        client.ping()
    except Exception as err:  # docker-py raises many types for "no engine"
        pytest.fail(f"no Docker engine answers ({err!r}): `make test-deploy` starts one", pytrace=False)
    yield client
    client.close()
