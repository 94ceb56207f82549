"""Figures from pairs, and the outputs: `bench/results.md` and a line in `bench/results.jsonl`."""

from __future__ import annotations

import os
import platform
import random
import statistics
import subprocess
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import orjson

HERE = Path(__file__).resolve().parent


@dataclass
class Figure:
    """A ratio (or absolute value) over pairs: the median, the worst pair and a bootstrap CI."""

    key: str
    name: str
    values: list[float]
    must: str  # ">= 0.90", "<= 4", ...
    ambitious: str = ""
    unit: str = ""
    rejected: int = 0  # pairs left out because the reference arm was disturbed
    gated: bool = True  # False: a design target shown for information, not issue 7's must
    missing: str = ""  # why no value could be measured (then `values` is empty)

    @classmethod
    def not_measured(cls, key: str, name: str, why: str, must: str = "", **rest: Any) -> Figure:
        return cls(key, name, [], must, missing=why or "no value", **rest)

    @property
    def measured(self) -> bool:
        return bool(self.values)

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else float("nan")

    @property
    def worst(self) -> float:
        if not self.values:
            return float("nan")
        return max(self.values) if self.must.startswith("<=") else min(self.values)

    def ci95(self, rounds: int = 2000) -> tuple[float, float]:
        if not self.values:
            return float("nan"), float("nan")
        rng = random.Random(1)
        medians = sorted(
            statistics.median(rng.choices(self.values, k=len(self.values))) for _ in range(rounds)
        )
        return medians[int(0.025 * rounds)], medians[int(0.975 * rounds) - 1]

    @staticmethod
    def _holds(value: float, target: str) -> bool:
        if not target:
            return True
        op, bound = target.split()
        return value >= float(bound) if op == ">=" else value <= float(bound)

    @property
    def passes(self) -> bool:
        """A figure that could not be measured does not hold: nothing shows that it does."""
        if not self.measured:
            return not self.gated or not self.must
        return self._holds(self.median, self.must) or not self.gated

    @property
    def ambitious_met(self) -> bool:
        return self.measured and bool(self.ambitious) and self._holds(self.median, self.ambitious)

    def as_json(self) -> dict[str, Any]:
        low, high = self.ci95()
        return {
            "name": self.name,
            "median": self.median,
            "worst": self.worst,
            "ci95": [low, high],
            "pairs": self.values,
            "rejected_pairs": self.rejected,
            "must": self.must,
            "gated": self.gated,
            "passes": self.passes,
            "not_measured": self.missing or None,
        }


def keep_undisturbed(reference: list[float], pairs: list[float]) -> tuple[list[float], int]:
    """Leave out pairs whose reference arm is more than 15 % off the run's median reference
    (the box was disturbed), unless that would leave fewer than half of them."""
    mid = statistics.median(reference)
    kept = [p for r, p in zip(reference, pairs, strict=True) if abs(r - mid) <= 0.15 * mid]
    if len(kept) * 2 < len(pairs):
        return pairs, 0
    return kept, len(pairs) - len(kept)


def _run(*command: str) -> str:
    try:
        return subprocess.run(command, capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return ""


def machine(es_version: str) -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    versions = {
        name: metadata.version(name)
        for name in (
            "logspace",
            "starlette",
            "uvicorn",
            "uvloop",
            "httptools",
            "elasticsearch",
            "elastic-transport",
            "aiohttp",
            "orjson",
        )
    }
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "elasticsearch": es_version,
        "versions": versions,
        "commit": _run("git", "-C", str(HERE), "rev-parse", "--short", "HEAD"),
    }


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _fmt(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _verdict(f: Figure) -> str:
    if not f.must:
        return "-"
    verdict = "yes" if f._holds(f.median, f.must) else "**NO**"
    if f.ambitious_met:
        verdict += " (ambitious too)"
    return verdict if f.gated else f"{verdict} (not gated)"


def table(figures: list[Figure]) -> str:
    lines = [
        "| # | figure | median | worst pair | 95 % CI | pairs | must | ambitious | holds |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for f in figures:
        if not f.measured:
            verdict = "**NO**" if f.gated and f.must else "-"
            lines.append(
                f"| {f.key} | {f.name} | not measured: {f.missing} | - | - | 0 | "
                f"{f.must or '-'} | {f.ambitious or '-'} | {verdict} |"
            )
            continue
        low, high = f.ci95()
        unit = f" {f.unit}" if f.unit else ""
        kept = f"{len(f.values)}" + (f" (+{f.rejected} disturbed)" if f.rejected else "")
        lines.append(
            f"| {f.key} | {f.name} | **{_fmt(f.median)}{unit}** | {_fmt(f.worst)} | "
            f"{_fmt(low)}-{_fmt(high)} | {kept} | {f.must} | {f.ambitious or '-'} | "
            f"{_verdict(f)} |"
        )
    return "\n".join(lines)


def output_name(mode: str, figures: str, every: str) -> str:
    """`results` for a full run of every figure (committed); quick and partial runs write
    `results-quick` and `results-partial`, which git ignores."""
    if mode != "full":
        return "results-quick"
    return "results" if set(every) <= set(figures) else "results-partial"


def write(run: dict[str, Any], figures: list[Figure], appendix: str, notes: str, name: str) -> str:
    """Write <name>.md (this run) and append the run to <name>.jsonl; returns the table."""
    record = {**run, "figures": {f.key: f.as_json() for f in figures}}
    with (HERE / f"{name}.jsonl").open("ab") as out:
        out.write(orjson.dumps(record) + b"\n")
    m = run["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items())
    target = run["target"]
    text = f"""# Benchmark results

Written by `{target}` on {run["started"]} UTC, commit `{m["commit"]}`; every run also
appends a line to `bench/{name}.jsonl`. How to run: `docs/development.md`.

Every figure is a ratio against a reference measured in the same run (arms alternated ABBA)
unless it has a unit. "worst pair" is the least favourable pair; pairs whose reference arm was
more than 15 % off the run's median reference are left out as disturbed (counted in brackets).

{table(figures)}

## Machine

| | |
|---|---|
| CPU | {m["cpu"]}, {m["nproc"]} cores (nproc), {m["memory_gib"]} GiB |
| kernel | {m["kernel"]} |
| Python | {m["python"]} |
| Elasticsearch | {m["elasticsearch"]} |
| libraries | {versions} |
| load average (1, 5, 15 min) | before {run["load_before"]}, after {run["load_after"]} |
| shared box | yes: other engineers ran test suites on the same 2 cores during the run |

{appendix}

{notes}
"""
    (HERE / f"{name}.md").write_text(text)
    return table(figures)
