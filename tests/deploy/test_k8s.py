"""deploy/k8s: rendered by kustomize, validated against the Kubernetes schemas offline, linted by checkov,
and the local overlay's api container spec started under Docker and probed as the kubelet would.

No cluster can run here, so what is checked is the manifest itself and the container it describes.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from grpc_health.v1 import health_pb2

from cancelguard.processes import health_status

from .support import K8S, LOOPBACK, find, image_env, kustomize_build, require_image, tool

OVERLAYS = ("local", "production")
SERVICES = {"ingestion": 50052, "metrics": 50053, "api": 50051}  # the gRPC health port of each
KUBERNETES_VERSION = "1.33.0"


@pytest.fixture(scope="module", params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    return request.param, kustomize_build(K8S / "overlays" / request.param)


def _pods(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (d["metadata"]["name"], d["spec"]["template"]["spec"])
        for d in docs
        if d["kind"] in ("Deployment", "Job")
    ]


def test_each_service_is_a_hardened_deployment_probed_over_grpc(
    overlay: tuple[str, list[dict[str, Any]]],
) -> None:
    name, docs = overlay
    for service, port in SERVICES.items():
        pod = find(docs, "Deployment", f"cancelguard-{service}")["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["args"] == ["serve", service]
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert container[probe]["grpc"] == {"port": port}, (service, probe)
        assert port in {p["containerPort"] for p in container["ports"]}
        assert {"cpu", "memory"} <= container["resources"]["requests"].keys()
        assert {"cpu", "memory"} <= container["resources"]["limits"].keys()
        assert container["imagePullPolicy"] == ("Never" if name == "local" else "IfNotPresent")
    for workload, pod in _pods(docs):
        (container,) = pod["containers"]
        assert pod["automountServiceAccountToken"] is False, workload
        assert pod["securityContext"]["runAsNonRoot"] is True, workload
        assert pod["securityContext"]["runAsUser"] >= 10000, workload
        assert container["securityContext"]["readOnlyRootFilesystem"] is True, workload
        assert container["securityContext"]["allowPrivilegeEscalation"] is False, workload
        assert container["securityContext"]["capabilities"]["drop"] == ["ALL"], workload


def test_the_api_is_a_service_on_a_named_grpc_port_with_an_hpa_and_pdbs(
    overlay: tuple[str, list[dict[str, Any]]],
) -> None:
    _, docs = overlay
    service = find(docs, "Service", "cancelguard-api")
    assert [(p["name"], p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [
        ("grpc", 50051, "grpc")
    ]
    api = find(docs, "Deployment", "cancelguard-api")
    assert service["spec"]["selector"].items() <= api["spec"]["template"]["metadata"]["labels"].items()
    hpa = find(docs, "HorizontalPodAutoscaler", "cancelguard-api")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "cancelguard-api"
    for service_name in SERVICES:
        find(docs, "PodDisruptionBudget", f"cancelguard-{service_name}")
    job = find(docs, "Job", "cancelguard-migrate")
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["migrate"]
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    assert {"Ingress", "Egress"} <= {t for p in policies for t in p["spec"]["policyTypes"]}
    # every pod is selected by the default-deny policy
    deny = find(docs, "NetworkPolicy", "cancelguard-default-deny")["spec"]["podSelector"]["matchLabels"]
    for d in docs:
        if d["kind"] in ("Deployment", "Job"):
            assert deny.items() <= d["spec"]["template"]["metadata"]["labels"].items(), d["metadata"]["name"]


def test_secrets_are_referenced_never_written(overlay: tuple[str, list[dict[str, Any]]]) -> None:
    _, docs = overlay
    assert not [d for d in docs if d["kind"] == "Secret"], "Secrets are created by the operator, not shipped"
    references = {
        (workload, env["name"]): env["valueFrom"]["secretKeyRef"]
        for workload, pod in _pods(docs)
        for env in pod["containers"][0].get("env", [])
        if "secretKeyRef" in env.get("valueFrom", {})
    }
    dsn = {"name": "cancelguard-postgres", "key": "dsn"}
    assert references == {
        ("cancelguard-api", "CANCELGUARD_POSTGRES_DSN"): dsn,
        ("cancelguard-api", "CANCELGUARD_API_PAGE_TOKEN_SECRET"): {
            "name": "cancelguard-api",
            "key": "page-token-secret",
        },
        ("cancelguard-metrics", "CANCELGUARD_POSTGRES_DSN"): dsn,
        ("cancelguard-migrate", "CANCELGUARD_POSTGRES_DSN"): dsn,
    }
    secret_volumes = {
        v["secret"]["secretName"] for _, pod in _pods(docs) for v in pod.get("volumes", []) if "secret" in v
    }
    assert secret_volumes == {"cancelguard-api-callers", "cancelguard-amazon"}


def _render_to(tmp_path: Path, name: str, path: Path) -> Path:
    out = tmp_path / f"{name}.yaml"
    out.write_text(yaml.safe_dump_all(kustomize_build(path)))
    return out


def test_the_overlays_and_examples_validate_against_the_kubernetes_schemas(tmp_path: Path) -> None:
    files = [_render_to(tmp_path, name, K8S / "overlays" / name) for name in OVERLAYS]
    files += [_render_to(tmp_path, name, K8S / "examples" / name) for name in ("strimzi", "cloudnativepg")]
    out = subprocess.run(
        [tool("kubernetes-validate"), "--strict", "--quiet", "-k", KUBERNETES_VERSION, *map(str, files)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    # the operators' custom resources have no schema here: warned about, not failed
    assert out.returncode == 0, out.stdout + out.stderr


def test_checkov_finds_nothing_in_the_overlays(tmp_path: Path) -> None:
    files = [_render_to(tmp_path, name, K8S / "overlays" / name) for name in OVERLAYS]
    args = [arg for f in files for arg in ("-f", str(f))]
    out = subprocess.run(
        [tool("checkov"), "--config-file", str(K8S / "checkov.yaml"), *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert out.returncode == 0, out.stdout[-5000:] + out.stderr[-2000:]
    assert "Failed checks: 0" in out.stdout


# --- the api container, as the local overlay describes it, under Docker -----------------------------------


def _env(
    container: dict[str, Any], docs: list[dict[str, Any]], secrets: dict[tuple[str, str], str]
) -> dict[str, str]:
    """The container's environment as the kubelet would build it from the ConfigMaps and Secrets."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(find(docs, "ConfigMap", source["configMapRef"]["name"])["data"])
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            env[item["name"]] = secrets[(ref["name"], ref["key"])]
    return env


def _bytes(quantity: str) -> int:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    for suffix, factor in units.items():
        if quantity.endswith(suffix):
            return int(quantity[: -len(suffix)]) * factor
    return int(quantity)


def _nano_cpus(quantity: str) -> int:
    return int(quantity[:-1]) * 10**6 if quantity.endswith("m") else int(float(quantity) * 10**9)


async def _wait_serving(address: str, timeout: float, container: Any) -> None:
    deadline = time.monotonic() + timeout
    while await health_status(address) != health_pb2.HealthCheckResponse.SERVING:
        container.reload()
        if container.status != "running" or time.monotonic() > deadline:
            logs = container.logs(tail=30).decode(errors="replace")
            pytest.fail(f"{address} not SERVING ({container.status}) within {timeout:.0f}s:\n{logs}")
        await asyncio.sleep(0.5)


async def test_the_rendered_api_container_starts_under_docker_and_answers_its_probes(
    docker_client: Any, kafka_node_env: Callable[[], dict[str, str]]
) -> None:
    docs = kustomize_build(K8S / "overlays" / "local")
    pod = find(docs, "Deployment", "cancelguard-api")["spec"]["template"]["spec"]
    (spec,) = pod["containers"]
    assert spec["imagePullPolicy"] == "Never"
    require_image(docker_client, spec["image"])
    postgres_image = image_env("CANCELGUARD_POSTGRES_IMAGE", "postgres:18")
    kafka_image = image_env("CANCELGUARD_KAFKA_IMAGE", "apache/kafka:4.1.1")
    for image in (postgres_image, kafka_image):
        require_image(docker_client, image)

    started: list[Any] = []
    network = docker_client.networks.create(f"cancelguard-k8s-test-{uuid.uuid4().hex[:8]}")
    try:
        # the Kafka the ConfigMap names and the Postgres the Secret would point at, on a network of this
        # test's own, by aliases (names of containers do not resolve on every engine)
        def start(image: str, alias: str, environment: dict[str, str]) -> None:
            container = docker_client.containers.create(image, environment=environment)
            started.append(container)
            network.connect(container, aliases=[alias])
            container.start()

        config = find(docs, "ConfigMap", "cancelguard-config")["data"]
        kafka_host, kafka_port = config["CANCELGUARD_KAFKA_BOOTSTRAP"].rsplit(":", 1)
        start(
            kafka_image,
            kafka_host,
            {
                **kafka_node_env(),
                "KAFKA_LISTENERS": f"PLAINTEXT://:{kafka_port},CONTROLLER://:9093",
                "KAFKA_ADVERTISED_LISTENERS": f"PLAINTEXT://{kafka_host}:{kafka_port}",
                "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                "KAFKA_INTER_BROKER_LISTENER_NAME": "PLAINTEXT",
            },
        )
        start(
            postgres_image,
            "postgres",
            {"POSTGRES_USER": "cancelguard", "POSTGRES_PASSWORD": "test", "POSTGRES_DB": "cancelguard"},
        )
        dsn = "postgresql://cancelguard:test@postgres:5432/cancelguard"

        security, pod_security = spec["securityContext"], pod["securityContext"]
        tmpfs = {
            m["mountPath"]: f"size={_bytes(v['emptyDir'].get('sizeLimit', '64Mi'))}"
            for m in spec["volumeMounts"]
            for v in pod["volumes"]
            if v["name"] == m["name"] and "emptyDir" in v
        }
        api = docker_client.containers.run(
            spec["image"],
            entrypoint=spec.get("command"),  # none: the image's ENTRYPOINT, as in Kubernetes
            command=spec["args"],
            detach=True,
            network=network.name,
            environment=_env(
                spec,
                docs,
                {
                    ("cancelguard-postgres", "dsn"): dsn,
                    ("cancelguard-api", "page-token-secret"): uuid.uuid4().hex,
                },
            ),
            user=f"{pod_security['runAsUser']}:{pod_security['runAsGroup']}",
            read_only=security["readOnlyRootFilesystem"],
            cap_drop=security["capabilities"]["drop"],
            security_opt=[] if security["allowPrivilegeEscalation"] else ["no-new-privileges"],
            tmpfs=tmpfs,
            ports={f"{p['containerPort']}/tcp": (LOOPBACK, None) for p in spec["ports"]},
            mem_limit=_bytes(spec["resources"]["limits"]["memory"]),
            nano_cpus=_nano_cpus(spec["resources"]["limits"]["cpu"]),
        )
        started.append(api)
        api.reload()

        def address(port: int) -> str:
            return f"{LOOPBACK}:{api.ports[f'{port}/tcp'][0]['HostPort']}"

        startup = spec["startupProbe"]
        await _wait_serving(
            address(startup["grpc"]["port"]), startup["periodSeconds"] * startup["failureThreshold"], api
        )
        for probe in ("readinessProbe", "livenessProbe"):
            assert (
                await health_status(address(spec[probe]["grpc"]["port"]))
                == health_pb2.HealthCheckResponse.SERVING
            )

        # as the manifest says: not root, and nothing written outside the emptyDir
        uid = api.exec_run(["python3", "-c", "import os; print(os.getuid())"])
        assert uid.output.decode().strip() == str(pod_security["runAsUser"])
        assert api.exec_run(["python3", "-c", "open('/opt/probe', 'w')"]).exit_code != 0
        assert api.exec_run(["python3", "-c", "open('/tmp/probe', 'w')"]).exit_code == 0

        # SIGTERM, as Kubernetes stops a pod: it drains and exits 0 within the grace period
        api.stop(timeout=pod["terminationGracePeriodSeconds"])
        assert api.wait(timeout=10)["StatusCode"] == 0, api.logs(tail=30).decode(errors="replace")
    finally:
        for container in reversed(started):
            container.remove(force=True)
        network.remove()
