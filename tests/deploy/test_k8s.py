"""deploy/k8s: rendered by kustomize, validated against the Kubernetes schemas offline, linted by checkov,
and the local overlay's api and pollers container specs started under Docker and probed as the kubelet
would (the pollers with the simulator's FAKE accounts as their Secret, polling the simulator).

No cluster can run here, so what is checked is the manifest itself and the container it describes.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from grpc_health.v1 import health_pb2

from cancelguard.demo_credentials import SIMULATOR_SELLERS
from cancelguard.processes import health_status

from .support import K8S, LOOPBACK, REPO, find, image_env, kustomize_build, require_image, tool

OVERLAYS = ("local", "production")
SERVICES = {"ingestion": 50052, "metrics": 50053, "api": 50051, "pollers": 50054}  # the gRPC health ports
# the workload kind of each service: the pollers are a StatefulSet, one pod per shard (pollers.yaml)
KINDS = {"ingestion": "Deployment", "metrics": "Deployment", "api": "Deployment", "pollers": "StatefulSet"}
WORKLOADS = ("Deployment", "StatefulSet", "Job")
# the health service names each probe asks ("": the whole service); the pollers' liveness asks
# `liveness`, SERVING while the process answers, since a restart cannot end an outage of Amazon's
LIVENESS = {"pollers": "liveness"}
AMAZON_MOUNT = "/var/run/secrets/cancelguard/amazon"
KUBERNETES_VERSION = "1.33.0"


@pytest.fixture(scope="module", params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    return request.param, kustomize_build(K8S / "overlays" / request.param)


def _pods(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [(d["metadata"]["name"], d["spec"]["template"]["spec"]) for d in docs if d["kind"] in WORKLOADS]


def _workload(docs: list[dict[str, Any]], service: str) -> dict[str, Any]:
    return find(docs, KINDS[service], f"cancelguard-{service}")


def _env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def test_each_service_is_a_hardened_deployment_probed_over_grpc(
    overlay: tuple[str, list[dict[str, Any]]],
) -> None:
    name, docs = overlay
    assert {d["metadata"]["name"] for d in docs if d["kind"] in ("Deployment", "StatefulSet")} == {
        f"cancelguard-{service}" for service in SERVICES
    }
    for service, port in SERVICES.items():
        pod = _workload(docs, service)["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["args"] == ["serve", service]
        for probe in ("startupProbe", "readinessProbe"):
            assert container[probe]["grpc"] == {"port": port}, (service, probe)
        liveness = {"port": port, **({"service": LIVENESS[service]} if service in LIVENESS else {})}
        assert container["livenessProbe"]["grpc"] == liveness, service
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
        pdb = find(docs, "PodDisruptionBudget", f"cancelguard-{service_name}")
        labels = _workload(docs, service_name)["spec"]["template"]["metadata"]["labels"]
        assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items(), service_name
    job = find(docs, "Job", "cancelguard-migrate")
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["migrate"]
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    assert {"Ingress", "Egress"} <= {t for p in policies for t in p["spec"]["policyTypes"]}
    # every pod is selected by the default-deny policy
    deny = find(docs, "NetworkPolicy", "cancelguard-default-deny")["spec"]["podSelector"]["matchLabels"]
    for d in docs:
        if d["kind"] in WORKLOADS:
            assert deny.items() <= d["spec"]["template"]["metadata"]["labels"].items(), d["metadata"]["name"]


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A label selector (matchLabels, matchExpressions In/NotIn/Exists) applied to a pod's labels."""
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for e in selector.get("matchExpressions", []):
        value, present = labels.get(e["key"]), e["key"] in labels
        ok = {
            "In": present and value in e.get("values", []),
            "NotIn": not present or value not in e.get("values", []),
            "Exists": present,
            "DoesNotExist": not present,
        }[e["operator"]]
        if not ok:
            return False
    return True


def test_only_the_pollers_and_the_api_reach_amazon_and_every_service_reaches_kafka_and_postgres(
    overlay: tuple[str, list[dict[str, Any]]],
) -> None:
    _, docs = overlay
    policies = [d for d in docs if d["kind"] == "NetworkPolicy" and "Egress" in d["spec"]["policyTypes"]]

    def egress_ports(labels: dict[str, str]) -> set[int]:
        return {
            port["port"]
            for policy in policies
            if _selects(policy["spec"]["podSelector"], labels)
            for rule in policy["spec"].get("egress", [])
            for port in rule.get("ports", [])
        }

    for service in SERVICES:
        labels = _workload(docs, service)["spec"]["template"]["metadata"]["labels"]
        ports = egress_ports(labels)
        assert {53, 9092, 5432} <= ports, service
        assert (443 in ports) == (service in ("pollers", "api")), service


def test_the_pollers_are_one_pod_per_shard_with_the_accounts_secret(
    overlay: tuple[str, list[dict[str, Any]]],
) -> None:
    _, docs = overlay
    pollers = _workload(docs, "pollers")
    spec = pollers["spec"]
    (container,) = spec["template"]["spec"]["containers"]
    env = _env_of(container)
    # one process per shard: as many shards as replicas, the pod's ordinal its shard
    assert env["CANCELGUARD_POLLER_SHARDS"] == str(spec["replicas"])
    assert env["CANCELGUARD_POLLER_SHARD"] == {
        "fieldRef": {"fieldPath": "metadata.labels['apps.kubernetes.io/pod-index']"}
    }
    assert spec["podManagementPolicy"] == "Parallel"
    governing = find(docs, "Service", spec["serviceName"])
    assert governing["spec"]["clusterIP"] == "None"
    assert governing["spec"]["selector"].items() <= spec["template"]["metadata"]["labels"].items()
    # the accounts file and its credentials from the Secret cancelguard-amazon, which the pollers require
    assert env["CANCELGUARD_ACCOUNTS_FILE"] == f"{AMAZON_MOUNT}/accounts.json"
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == AMAZON_MOUNT)
    assert mount["readOnly"] is True
    volume = next(v for v in spec["template"]["spec"]["volumes"] if v["name"] == mount["name"])
    assert volume["secret"]["secretName"] == "cancelguard-amazon"
    assert volume["secret"].get("optional", False) is False
    assert {"CANCELGUARD_POSTGRES_DSN"} <= env.keys()


def test_the_api_reads_the_accounts_only_where_the_secret_is_required(
    overlay: tuple[str, list[dict[str, Any]]],
) -> None:
    """An accounts file that is named but missing stops the API at start, so the API names it only with
    components/api-feeds (the production overlay), which also makes the Secret required; elsewhere the
    Secret is mounted optionally and never read (the local overlay's api starts without it, below)."""
    name, docs = overlay
    api = _workload(docs, "api")["spec"]["template"]["spec"]
    (container,) = api["containers"]
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == AMAZON_MOUNT)
    volume = next(v for v in api["volumes"] if v["name"] == mount["name"])
    assert volume["secret"]["secretName"] == "cancelguard-amazon"
    accounts_file = _env_of(container).get("CANCELGUARD_ACCOUNTS_FILE")
    config = find(docs, "ConfigMap", "cancelguard-config")["data"]
    assert "CANCELGUARD_ACCOUNTS_FILE" not in config
    if name == "production":
        pollers = _workload(docs, "pollers")["spec"]["template"]["spec"]["containers"][0]
        assert accounts_file == _env_of(pollers)["CANCELGUARD_ACCOUNTS_FILE"]
        assert volume["secret"]["optional"] is False
    else:
        assert accounts_file is None
        assert volume["secret"]["optional"] is True


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
        ("cancelguard-pollers", "CANCELGUARD_POSTGRES_DSN"): dsn,
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


# --- the api and pollers containers, as the local overlay describes them, under Docker ------------------

# what the Secrets a pod mounts hold here: the pollers' accounts are Compose's FAKE ones of the simulator,
# laid out as the Secret cancelguard-amazon is; the others are left out (the api's are optional)
SECRET_FILES = {"cancelguard-amazon": REPO / "deploy" / "compose" / "amazon-simulator"}
SIMULATOR_ALIAS = "amazon"  # the host the FAKE accounts file names (http://amazon:8700)


def _env(
    container: dict[str, Any],
    docs: list[dict[str, Any]],
    secrets: dict[tuple[str, str], str],
    pod_name: str,
) -> dict[str, str]:
    """The container's environment as the kubelet would build it from the ConfigMaps, Secrets and the pod
    (the first pod of its workload: a StatefulSet's ordinal 0)."""
    fields = {"metadata.name": pod_name, "metadata.labels['apps.kubernetes.io/pod-index']": "0"}
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(find(docs, "ConfigMap", source["configMapRef"]["name"])["data"])
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        elif "fieldRef" in item["valueFrom"]:
            env[item["name"]] = fields[item["valueFrom"]["fieldRef"]["fieldPath"]]
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            env[item["name"]] = secrets[(ref["name"], ref["key"])]
    return env


def _secret_mounts(container: dict[str, Any], pod: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Docker bind mounts for the pod's Secret volumes, read-only, from SECRET_FILES; an optional Secret
    that is not there is left out, as Kubernetes leaves its directory empty."""
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts: dict[str, dict[str, str]] = {}
    for m in container["volumeMounts"]:
        secret = volumes[m["name"]].get("secret")
        if secret is None:
            continue
        assert m.get("readOnly") is True, m
        source = SECRET_FILES.get(secret["secretName"])
        if source is None:
            assert secret.get("optional") is True, f"{secret['secretName']} is required: give it SECRET_FILES"
            continue
        mounts[str(source)] = {"bind": m["mountPath"], "mode": "ro"}
    return mounts


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


def _polled(simulator_url: str) -> list[Any]:
    """The Orders API calls the simulator answered (the pollers' first polls)."""
    queries: list[Any] = []
    for operation in ("orders2026.searchOrders", "orders.getOrders"):
        with urllib.request.urlopen(f"{simulator_url}/_sim/queries?operation={operation}", timeout=10) as r:
            queries += json.load(r)["queries"]
    return queries


@pytest.mark.parametrize("service", ["api", "pollers"])
async def test_the_rendered_container_starts_under_docker_and_answers_its_probes(
    docker_client: Any, kafka_node_env: Callable[[], dict[str, str]], service: str
) -> None:
    docs = kustomize_build(K8S / "overlays" / "local")
    workload = _workload(docs, service)
    pod = workload["spec"]["template"]["spec"]
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
        def start(image: str, alias: str, environment: dict[str, str], **options: Any) -> Any:
            container = docker_client.containers.create(image, environment=environment, **options)
            started.append(container)
            network.connect(container, aliases=[alias])
            container.start()
            return container

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
        simulator = None
        if service == "pollers":  # the stand-in for Amazon that the FAKE accounts file names
            simulator = start(
                spec["image"],
                SIMULATOR_ALIAS,
                {},
                command=["simulator", "--host", "0.0.0.0", "--port", "8700"],
                read_only=True,
                tmpfs={"/tmp": ""},
                ports={"8700/tcp": (LOOPBACK, None)},
            )
        dsn = "postgresql://cancelguard:test@postgres:5432/cancelguard"

        security, pod_security = spec["securityContext"], pod["securityContext"]
        tmpfs = {
            m["mountPath"]: f"size={_bytes(v['emptyDir'].get('sizeLimit', '64Mi'))}"
            for m in spec["volumeMounts"]
            for v in pod["volumes"]
            if v["name"] == m["name"] and "emptyDir" in v
        }
        container = docker_client.containers.run(
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
                f"{workload['metadata']['name']}-0",
            ),
            user=f"{pod_security['runAsUser']}:{pod_security['runAsGroup']}",
            read_only=security["readOnlyRootFilesystem"],
            cap_drop=security["capabilities"]["drop"],
            security_opt=[] if security["allowPrivilegeEscalation"] else ["no-new-privileges"],
            tmpfs=tmpfs,
            volumes=_secret_mounts(spec, pod),
            ports={f"{p['containerPort']}/tcp": (LOOPBACK, None) for p in spec["ports"]},
            mem_limit=_bytes(spec["resources"]["limits"]["memory"]),
            nano_cpus=_nano_cpus(spec["resources"]["limits"]["cpu"]),
        )
        started.append(container)
        container.reload()

        def address(port: int) -> str:
            return f"{LOOPBACK}:{container.ports[f'{port}/tcp'][0]['HostPort']}"

        startup = spec["startupProbe"]
        await _wait_serving(
            address(startup["grpc"]["port"]),
            startup["periodSeconds"] * startup["failureThreshold"],
            container,
        )
        for probe in ("readinessProbe", "livenessProbe"):
            grpc_probe = spec[probe]["grpc"]
            assert (
                await health_status(address(grpc_probe["port"]), service=grpc_probe.get("service", ""))
                == health_pb2.HealthCheckResponse.SERVING
            ), probe

        if simulator is not None:  # the accounts from the mounted Secret reach Amazon: the orders polled
            simulator.reload()
            url = f"http://{LOOPBACK}:{simulator.ports['8700/tcp'][0]['HostPort']}"
            deadline = time.monotonic() + 60
            while not _polled(url):
                assert time.monotonic() < deadline, container.logs(tail=30).decode(errors="replace")
                await asyncio.sleep(1)
            assert {q["seller_id"] for q in _polled(url)} <= set(SIMULATOR_SELLERS)

        # as the manifest says: not root, and nothing written outside the emptyDir
        uid = container.exec_run(["python3", "-c", "import os; print(os.getuid())"])
        assert uid.output.decode().strip() == str(pod_security["runAsUser"])
        assert container.exec_run(["python3", "-c", "open('/opt/probe', 'w')"]).exit_code != 0
        assert container.exec_run(["python3", "-c", "open('/tmp/probe', 'w')"]).exit_code == 0

        # SIGTERM, as Kubernetes stops a pod: it drains and exits 0 within the grace period
        container.stop(timeout=pod["terminationGracePeriodSeconds"])
        assert container.wait(timeout=10)["StatusCode"] == 0, container.logs(tail=30).decode(errors="replace")
    finally:
        for c in reversed(started):
            c.remove(force=True)
        network.remove()
