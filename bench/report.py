"""Figures from pairs, and the outputs: `bench/results.md` and a line in `bench/results.jsonl`.

`results.md` holds the figures of issue 7 ((a) to (e)) as its body, written by a run that
measures all of them, followed by parts of their own (figures (f) and (g)), each replaced only
by a run that measures it. So `python -m bench g` updates (g) and leaves the rest as the last
runs wrote it; every run appends its line to `results.jsonl`. Quick runs write
`results-quick.*` the same way (git ignores them).
"""

from __future__ import annotations

import os
import platform
import random
import re
import statistics
import subprocess
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import orjson

from . import wakecost

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
    rejected: int = 0  # pairs left out: their reference arm was disturbed, or (c) above capacity
    rejected_why: str = "disturbed"  # how the report names those pairs
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
            "gunicorn",
        )
        if _installed(name)
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


def _installed(name: str) -> bool:
    try:
        metadata.version(name)
    except metadata.PackageNotFoundError:
        return False
    return True


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def cpu_ticks() -> tuple[int, int]:
    """(all, stolen) CPU ticks of the machine so far, from /proc/stat ((0, 0) where there is
    none): on a virtual machine, `stolen` is the time the hypervisor gave its CPUs to others."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(field) for field in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return 0, 0
    # user nice system idle iowait irq softirq steal (guest time is within user)
    return sum(fields[:8]), (fields[7] if len(fields) > 7 else 0)


def stolen_share(before: tuple[int, int], after: tuple[int, int]) -> float | None:
    """The share of the machine's CPU time the hypervisor took between two `cpu_ticks`."""
    total = after[0] - before[0]
    return None if total <= 0 else round((after[1] - before[1]) / total, 4)


def _stolen(run: dict[str, Any]) -> str:
    share = run.get("stolen")
    if share is None:
        return "not known"
    return f"{share * 100:.1f} % of the CPU time during the run (taken by the hypervisor)"


def _waking(run: dict[str, Any]) -> str:
    waking = run.get("waking")
    if not waking:
        return "not known"
    return "; ".join(
        f"{when}: {wakecost.summary(waking.get(when))}" for when in ("before", "after")
    )


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
        kept = f"{len(f.values)}" + (f" (+{f.rejected} {f.rejected_why})" if f.rejected else "")
        lines.append(
            f"| {f.key} | {f.name} | **{_fmt(f.median)}{unit}** | {_fmt(f.worst)} | "
            f"{_fmt(low)}-{_fmt(high)} | {kept} | {f.must} | {f.ambitious or '-'} | "
            f"{_verdict(f)} |"
        )
    return "\n".join(lines)


# Every figure's letter. (a) to (e), issue 7's, make the body of results.md; every other
# letter is a part of its own (see write_part), replaced only by a run that measures it.
EVERY = "abcdefg"
CORE = "abcde"


def results_name(run: dict[str, Any]) -> str:
    # Quick (development) runs stay out of the committed history.
    return "results" if run["mode"] == "full" else "results-quick"


def body_name(run: dict[str, Any]) -> str:
    """Where the body ((a) to (e)) goes: a full run of only some of them writes
    `results-partial.md` (git ignores it), so the committed body is always one whole run."""
    chosen = set(CORE) & set(run["plan"]["figures"])
    if results_name(run) == "results" and chosen != set(CORE):
        return "results-partial"
    return results_name(run)


def target(mode: str, figures: str) -> str:
    """The command that makes a run like this one."""
    make = "make bench" if mode == "full" else "make bench-quick"
    if set(EVERY) <= set(figures):
        return make
    if figures == "f" and mode == "full":
        return "make bench-fleet"
    return f"{'' if mode == 'full' else 'BENCH_QUICK=1 '}python -m bench {figures}"


def record(run: dict[str, Any], figures: list[Figure]) -> None:
    """Append the run, with every figure it measured, to results.jsonl (results-quick.jsonl
    for a quick run)."""
    record = {**run, "figures": {f.key: f.as_json() for f in figures}}
    with (HERE / f"{results_name(run)}.jsonl").open("ab") as out:
        out.write(orjson.dumps(record) + b"\n")


_PART = re.compile(r"<!-- part (\w+) -->\n.*?<!-- end of part \1 -->\n", re.DOTALL)
DISTURBED = (
    "Arms alternated (ABBA, or ABC CBA with three arms); a round whose reference arm was more "
    "than 15 % off the run's median reference is left out as disturbed."
)


def _split(path: Path) -> tuple[str, dict[str, str]]:
    """The body of a results file and its parts by key."""
    text = path.read_text() if path.exists() else ""
    parts = {match.group(1): match.group(0) for match in _PART.finditer(text)}
    return _PART.sub("", text).rstrip("\n") + "\n", parts


def _compose(path: Path, body: str, parts: dict[str, str]) -> None:
    # Parts in the order of their letters, whichever run wrote them last.
    path.write_text(body.rstrip("\n") + "\n" + "".join("\n" + parts[k] for k in sorted(parts)))


def write(run: dict[str, Any], figures: list[Figure], appendix: str, notes: str) -> str:
    """Write the figures of issue 7 as the body of results.md, keeping its parts; returns the
    table."""
    path = HERE / f"{body_name(run)}.md"
    _, parts = _split(path)
    m = run["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items())
    text = f"""# Benchmark results

Written by `{run["target"]}` on {run["started"]} UTC, commit `{m["commit"]}`; every run also
appends a line to `bench/{results_name(run)}.jsonl`. How to run: `docs/development.md`.

Every figure is a ratio against a reference measured in the same run (arms alternated ABBA)
unless it has a unit. "worst pair" is the least favourable pair; pairs whose reference arm was
more than 15 % off the run's median reference are left out as disturbed (counted in brackets).
Figures (f) and (g) are parts of their own, at the end, each written by the last run that
measured it.

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
| stolen | {_stolen(run)} |
| waking from idle (`bench/wakecost.py`) | {_waking(run)} |
| run note | {run.get("note") or "none (BENCH_NOTE says what else ran on the box)"} |

{appendix}

{notes}
"""
    _compose(path, text, parts)
    return table(figures)


def write_part(
    run: dict[str, Any],
    key: str,
    title: str,
    figures: list[Figure],
    appendix: str,
    method: str = DISTURBED,
) -> str:
    """Write (or replace) part `key` of results.md, leaving the rest as it is."""
    path = HERE / f"{results_name(run)}.md"
    m = run["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items())
    part = f"""<!-- part {key} -->
## {title}

Written by `{run["target"]}` on {run["started"]} UTC, commit `{m["commit"]}`, on
{m["cpu"]}, {m["nproc"]} cores, Python {m["python"]}, Elasticsearch {m["elasticsearch"]};
{versions}. Load average (1, 5, 15 min) before {run["load_before"]}, after
{run["load_after"]}; stolen: {_stolen(run)}. Waking from idle: {_waking(run)}. {method}
{(chr(10) + run["note"] + chr(10)) if run.get("note") else ""}
{table(figures)}

{appendix}
<!-- end of part {key} -->
"""
    body, parts = _split(path)
    if not path.exists():
        body = "# Benchmark results\n"
    _compose(path, body, {**parts, key: part})
    return table(figures)
