"""TLS and mutual TLS on the API: with the CA a client gets in (and still needs its token); under mutual
TLS a client without a certificate the CA signed does not even connect."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import asyncpg
import grpc
import pytest

from cancelguard import db
from cancelguard.client import AsyncClient, Tls
from cancelguard.config import Settings
from cancelguard.demo_credentials import DEMO_TOKEN
from cancelguard.processes import ServiceProcesses
from cancelguard.v1 import metrics_pb2

pytestmark = pytest.mark.e2e


def _certificates(where: Path) -> dict[str, Path]:
    """A throwaway CA, a server certificate for 127.0.0.1 and a client certificate, signed by it."""

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=where, check=True, capture_output=True, timeout=60)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
            "-days", "2", "-subj", "/CN=cancelguard test CA")  # fmt: skip
    (where / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name in ("server", "client"):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                "-subj", f"/CN=cancelguard test {name}")  # fmt: skip
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", f"{name}.pem", "-days", "2", "-extfile", "san.ext")  # fmt: skip
    return {n: where / n for n in ("ca.pem", "server.pem", "server.key", "client.pem", "client.key")}


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make certificates")
async def test_mutual_tls_lets_in_only_clients_with_a_certificate_and_still_asks_for_the_token(
    namespace_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    files = _certificates(tmp_path)
    settings = namespace_settings(
        api_tls_cert_file=str(files["server.pem"]),
        api_tls_key_file=str(files["server.key"]),
        api_tls_client_ca_file=str(files["ca.pem"]),
    )
    await db.migrate(dsn=settings.postgres_dsn, schema=settings.postgres_schema)
    services = ServiceProcesses(settings, tmp_path / "logs")
    services.start(("api",))
    address = f"127.0.0.1:{settings.api_port}"
    request = metrics_pb2.GetCancellationRateRequest(
        seller_account="A1DEMOSELLERUS", marketplace_id="ATVPDKIKX0DER"
    )
    mutual = Tls(str(files["ca.pem"]), str(files["client.pem"]), str(files["client.key"]))
    try:
        async with AsyncClient(address, token=DEMO_TOKEN, tls=mutual, deadline_s=30) as api:
            await api.metrics.GetCancellationRate(request, wait_for_ready=True)  # in, once it listens
        async with AsyncClient(address, token="wrong", tls=mutual) as api:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await api.metrics.GetCancellationRate(request)
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        async with AsyncClient(address, token=DEMO_TOKEN, tls=Tls(str(files["ca.pem"])), deadline_s=3) as api:
            with pytest.raises(grpc.aio.AioRpcError) as err:  # no client certificate: no connection
                await api.metrics.GetCancellationRate(request)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        async with AsyncClient(address, token=DEMO_TOKEN, deadline_s=3) as api:
            with pytest.raises(grpc.aio.AioRpcError) as err:  # plaintext to a TLS port
                await api.metrics.GetCancellationRate(request)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        services.stop()
        conn = await asyncpg.connect(settings.postgres_dsn)
        await conn.execute(f'DROP SCHEMA IF EXISTS "{settings.postgres_schema}" CASCADE')
        await conn.close()
