"""FAKE API credentials for the local demo (`make run`, `make demo`), the CLI's default and the tests.

They are published here on purpose and open nothing but a local demo: the API accepts a token only when
its digest is in the callers file it was given, and only `cancelguard demo`/`run` and the tests write
these digests into one. Never put them in a real callers file; make real tokens with
`cancelguard api-token NAME`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from cancelguard.api.auth import token_digest

DEMO_TOKEN = "cancelguard-demo-token-FAKE-not-a-secret"  # the demo's calling service, "demo"
DEMO_CALLER = "demo"
DEMO_SELLERS = ("A1DEMOSELLERUS", "A2DEMOSELLERJP")
# the SP-API simulator's default sellers (simulator/spapi/generator.py), which Compose's pollers poll
# (deploy/compose/amazon-simulator): the demo's caller reads them too in Compose (demo-callers.toml)
SIMULATOR_SELLERS = ("A1SIMSELLER01", "A2SIMSELLER02", "A3SIMSELLER03")
COMPOSE_SELLERS = (*DEMO_SELLERS, *SIMULATOR_SELLERS)


def callers_toml(callers: Mapping[str, tuple[str, Iterable[str]]]) -> str:
    """A callers file for {name: (token, seller accounts)}."""
    lines = ["# FAKE credentials for a local demo or a test: see cancelguard/demo_credentials.py", ""]
    for name, (token, sellers) in callers.items():
        lines += [
            f"[callers.{name}]",
            f'token_sha256 = ["{token_digest(token)}"]',
            "seller_accounts = [" + ", ".join(f'"{s}"' for s in sellers) + "]",
            "",
        ]
    return "\n".join(lines)


def write_demo_callers(path: Path, sellers: Iterable[str] = DEMO_SELLERS) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(callers_toml({DEMO_CALLER: (DEMO_TOKEN, sellers)}), encoding="utf-8")
    return path
