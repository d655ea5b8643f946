"""Generates the Python protobuf/gRPC stubs from proto/ into services/.

Used two ways, so there is one recipe:
- `make proto` runs this file as a script;
- the wheel build (hatchling) runs it as a build hook, so a wheel built from a fresh clone carries the stubs.

The proto tree mirrors the package tree (proto/cancelguard/v1 -> services/cancelguard/v1), so the generated
`from cancelguard.events.v1 import ...` imports work without patching.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
PROTO_ROOT = ROOT / "proto"
OUT_ROOT = ROOT / "services"


def generate() -> list[Path]:
    import grpc_tools
    from grpc_tools import protoc

    protos = sorted(PROTO_ROOT.rglob("*.proto"))
    if not protos:
        raise SystemExit(f"no .proto files under {PROTO_ROOT}")
    # grpc_tools ships the well-known types (google/protobuf/*.proto) next to its module
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        f"--python_out={OUT_ROOT}",
        f"--pyi_out={OUT_ROOT}",
        f"--grpc_python_out={OUT_ROOT}",
        *[str(p) for p in protos],
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed; see the messages above")
    return protos


try:
    from hatchling.builders.hooks.plugin.interface import BuildHookInterface
except ImportError:  # run as a script by `make proto`, where hatchling is not installed
    BuildHookInterface = object  # type: ignore[assignment,misc]


class ProtoBuildHook(BuildHookInterface):  # type: ignore[misc,valid-type]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        generate()


if __name__ == "__main__":
    for proto in generate():
        print(f"generated stubs for {proto.relative_to(ROOT)}", file=sys.stderr)
