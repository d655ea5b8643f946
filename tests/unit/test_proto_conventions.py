"""The protobuf API follows Buf's STANDARD lint (plus comments on everything) and stays wire and source
compatible with the API as released (`buf breaking` against proto-baseline/released.binpb).

The buf CLI comes from npm; `make buf` installs it into .local/buf. Without npm the test is skipped, with
a warning that says so, never silently.
"""

from __future__ import annotations

import shutil
import subprocess
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUF = ROOT / ".local" / "buf" / "node_modules" / ".bin" / "buf"


@pytest.fixture(scope="module")
def buf() -> Path:
    if not BUF.exists():
        if shutil.which("npm") is None:
            message = (
                "buf lint/breaking NOT RUN: npm is missing, so the buf CLI (npm @bufbuild/buf) "
                "cannot be installed"
            )
            warnings.warn(message, stacklevel=1)
            pytest.skip(message)
        subprocess.run(["make", "-s", "buf"], cwd=ROOT, check=True, timeout=300)
    return BUF


def _buf(buf: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(buf), *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_buf_lint_standard_and_comments(buf: Path) -> None:
    out = _buf(buf, "lint")
    assert out.returncode == 0, out.stdout + out.stderr


def test_no_breaking_change_against_the_released_api(buf: Path) -> None:
    out = _buf(buf, "breaking", "--against", "proto-baseline/released.binpb")
    assert out.returncode == 0, out.stdout + out.stderr
