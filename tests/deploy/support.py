"""Helpers of the deployment tests (`make test-deploy`): the built images, kustomize, rendered manifests.

They need what `make test-deploy` provides (a Docker engine, the images of `make images`, kustomize in
.local/bin, kubernetes-validate and checkov in .local/tools) and fail, never skip, when it is missing.
Everything a test starts it removes, by id, however the test ends.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
LOOPBACK = "127.0.0.1"


def tool(name: str) -> str:
    """A command-line tool `make test-deploy` installs (it puts .local/bin and .local/tools/bin on PATH)."""
    found = shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not on PATH: run the deployment tests with `make test-deploy`", pytrace=False)
    return found


def image_env(name: str, default: str) -> str:
    """An image name as the Makefile passes it (CANCELGUARD_IMAGE, ..._KAFKA_IMAGE, ..._POSTGRES_IMAGE)."""
    return os.environ.get(name) or default


def require_image(client: Any, name: str) -> None:
    """Nothing is pulled: the image must have been built here (`make images`)."""
    import docker

    try:
        client.images.get(name)
    except docker.errors.ImageNotFound:
        pytest.fail(f"image {name} is not built here (never pulled): run `make images`", pytrace=False)


def kustomize_build(path: Path) -> list[dict[str, Any]]:
    out = subprocess.run(
        [tool("kustomize"), "build", str(path)], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, f"kustomize build {path} failed:\n{out.stderr}"
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    matches = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name}, found {len(matches)}"
    return matches[0]
