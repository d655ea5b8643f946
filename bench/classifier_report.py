"""Precision/recall report for the buyer-message classifier over labelled JSONL files.

    python bench/classifier_report.py [files...]     (default: the dev set, then the held-out set)

Each line: {"id", "text", "language", "is_cancel_request", "kind", "note"}. Prints, per file, a table per
language and overall (n, TP, FP, FN, TN, precision, recall, language-detection accuracy), the misclassified
messages, and the classification speed. Runs from the repo root without installing the package.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "services"))

from cancelguard.domain.buyer_messages import classify_message  # noqa: E402

DEFAULT_FILES = (
    ROOT / "tests/data/buyer_messages/dev.jsonl",
    ROOT / "tests/data/buyer_messages/heldout.jsonl",
)
TEXT_WIDTH = 90


@dataclass
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0
    language_ok: int = 0

    @property
    def n(self) -> int:
        return self.tp + self.fp + self.fn + self.tn

    @property
    def precision(self) -> float | None:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    @property
    def recall(self) -> float | None:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else None

    def add(self, expected: bool, got: bool, language_ok: bool) -> None:
        if expected and got:
            self.tp += 1
        elif got:
            self.fp += 1
        elif expected:
            self.fn += 1
        else:
            self.tn += 1
        self.language_ok += language_ok


@dataclass
class Report:
    path: Path
    overall: Counts = field(default_factory=Counts)
    by_language: dict[str, Counts] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0


def load(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def evaluate(path: Path) -> Report:
    report = Report(path)
    rows = load(path)
    started = time.perf_counter()
    verdicts = [classify_message(row["text"]) for row in rows]
    report.seconds = time.perf_counter() - started
    for row, verdict in zip(rows, verdicts, strict=True):
        expected = bool(row["is_cancel_request"])
        language_ok = verdict.language == row["language"]
        report.overall.add(expected, verdict.is_cancel_request, language_ok)
        report.by_language.setdefault(row["language"], Counts()).add(
            expected, verdict.is_cancel_request, language_ok
        )
        if expected != verdict.is_cancel_request:
            text = " ".join(row["text"].split())
            if len(text) > TEXT_WIDTH:
                text = text[: TEXT_WIDTH - 1] + "…"
            report.errors.append(
                f"  {row['id']:<16} expected={'request' if expected else 'no':<7} "
                f"got={'request' if verdict.is_cancel_request else 'no':<7} [{row.get('kind', '')}] {text}\n"
                f"  {'':16} why: {verdict.explanation}"
            )
    return report


def _ratio(value: float | None) -> str:
    return "   -  " if value is None else f"{value:6.3f}"


def _row(name: str, c: Counts) -> str:
    return (
        f"{name:<8}{c.n:>5}{c.tp:>5}{c.fp:>5}{c.fn:>5}{c.tn:>5}  {_ratio(c.precision)}  "
        f"{_ratio(c.recall)}  {c.language_ok / c.n if c.n else 0:8.3f}"
    )


def render(report: Report) -> str:
    name = report.path.relative_to(ROOT) if report.path.is_relative_to(ROOT) else report.path
    header = (
        f"{'lang':<8}{'n':>5}{'TP':>5}{'FP':>5}{'FN':>5}{'TN':>5}  {'prec':>6}  {'recall':>6}  "
        f"{'lang-acc':>8}"
    )
    lines = [f"== {name}", header]
    lines += [_row(language, report.by_language[language]) for language in sorted(report.by_language)]
    lines.append(_row("overall", report.overall))
    rate = report.overall.n / report.seconds if report.seconds else float("inf")
    lines.append(
        f"speed: {report.overall.n} messages in {report.seconds * 1000:.1f} ms ({rate:,.0f} messages/s)"
    )
    lines.append(f"misclassified: {len(report.errors)}")
    lines += report.errors
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    paths = [Path(a) for a in argv] or [p for p in DEFAULT_FILES if p.exists()]
    for path in paths:
        print(render(evaluate(path)))
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
