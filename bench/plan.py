"""What a run measures and how long: the figures chosen, every knob (environment variables,
see bench/__main__.py and docs/development.md), and the figures each measurement owes the
report, so that a failed one can say which it could not give."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from . import report
from .fleetrun import FleetPlan
from .overheadbench import GATED, OverheadPlan
from .report import Figure

HERE = Path(__file__).resolve().parent


def env(name: str, default: str, quick: str | None = None) -> str:
    if os.environ.get("BENCH_QUICK") and quick is not None:
        default = quick
    return os.environ.get(name, default)


def _fleet_plan() -> FleetPlan:
    return FleetPlan(
        connections=int(env("BENCH_FLEET_CONNECTIONS", "512")),
        pairs=int(env("BENCH_FLEET_PAIRS", "5", "2")),
        seconds=int(env("BENCH_FLEET_SECONDS", "10", "5")),
        warmup=int(env("BENCH_FLEET_WARMUP", "3", "2")),
        bulk_connections=int(env("BENCH_FLEET_BULK_CONNECTIONS", "4")),
        latency_seconds=float(env("BENCH_FLEET_LATENCY_SECONDS", "30", "10")),
        latency_pairs=int(env("BENCH_FLEET_LATENCY_PAIRS", "2", "1")),
        idle_connections=int(env("BENCH_FLEET_IDLE", "2000")),
        idle_repeats=int(env("BENCH_FLEET_IDLE_REPEATS", "3", "1")),
        curve=env("BENCH_FLEET_CURVE", ""),
        curve_seconds=float(env("BENCH_FLEET_CURVE_SECONDS", "15")),
    )


def _overhead_plan() -> OverheadPlan:
    return OverheadPlan(
        seconds=float(env("BENCH_G_SECONDS", "10", "5")),
        light_seconds=float(env("BENCH_G_LIGHT_SECONDS", "5", "3")),
        connections=int(env("BENCH_G_CONNECTIONS", "16")),
        records=int(env("BENCH_G_RECORDS", "100000", "50000")),
    )


@dataclass(frozen=True)
class Plan:
    pairs: int = int(env("BENCH_PAIRS", "5", "2"))
    arm_seconds: float = float(env("BENCH_ARM_SECONDS", "10", "6"))
    max_arm_events: int = int(env("BENCH_MAX_ARM_EVENTS", "800000", "400000"))
    min_arm_events: int = int(env("BENCH_MIN_ARM_EVENTS", "300000", "150000"))
    # The design asks for minutes per arm; 30 s gives p99 from about 1000-1700 requests.
    latency_seconds: float = float(env("BENCH_LATENCY_SECONDS", "30", "6"))
    latency_bulk: int = int(env("BENCH_LATENCY_BULK", "1000"))
    sweep: str = env("BENCH_SWEEP", "500,1000,2000,5000:2,4,8", "1000,5000:2,4")
    sweep_seconds: float = float(env("BENCH_SWEEP_SECONDS", "6", "4"))
    figures: str = env("BENCH_FIGURES", report.EVERY)
    memory_k: str = env("BENCH_MEMORY_K", "1,8,32,128", "1,8,32")
    memory_repeats: int = int(env("BENCH_MEMORY_REPEATS", "3", "1"))
    memory_body_events: int = 370  # about 230 KB, the design's body size
    memory_hold_seconds: float = 4.0
    fleet: FleetPlan = field(default_factory=_fleet_plan)
    g: OverheadPlan = field(default_factory=_overhead_plan)

    @property
    def mode(self) -> str:
        return "quick" if os.environ.get("BENCH_QUICK") else "full"

    def sweep_grid(self) -> list[tuple[int, int]]:
        sizes, _, concurrencies = self.sweep.partition(":")
        return [(int(s), int(c)) for s in sizes.split(",") for c in concurrencies.split(",")]


# The figures a measurement reports, so a failed one can say which figures it could not give.
UNMEASURED: dict[str, list[tuple[str, str, str]]] = {
    "a": [
        ("a", "HQ events/s / direct `_bulk` events/s", ">= 0.90"),
        ("a'", "HQ CPU-s / ES CPU-s (HQ arm)", "<= 0.10"),
    ],
    "ce": [
        ("c50%", "p99 HQ / p99 direct at 50% of C_R", "<= 1.5"),
        ("c80%", "p99 HQ / p99 direct at 80% of C_R", "<= 1.5"),
        ("e", "HQ CPU per event at 80 % of C_R", "<= 5"),
    ],
    "d": [
        ("d", "peak memory per in-flight request / body", "<= 4"),
        ("d'", "idle RSS per worker", "<= 80"),
    ],
    "f": [
        ("f1", "ES CPU-us/event, HQ fleet / direct 1000-event `_bulk`", "<= 1.3"),
        ("f2", "HQ fleet events/s / direct 6-event `_bulk` events/s", ">= 2.5"),
        ("f3", "HQ CPU per event, fleet", "<= 12"),
        ("f4", "p99 at a fixed rate of half of HQ's fleet maximum", "<= 200"),
        ("f5", "HQ RSS growth for 2000 idle keep-alive connections", "<= 40"),
    ],
    "g": GATED,
}


@dataclass
class Part:
    """A figure with a part of its own in results.md (report.write_part)."""

    title: str
    method: str = report.DISTURBED
    notes: str = ""  # a file of notes written by hand, copied below the appendix
    figures: list[Figure] = field(default_factory=list)
    appendix: list[str] = field(default_factory=list)

    def text(self) -> str:
        notes = HERE / self.notes if self.notes else None
        return "\n\n".join(
            self.appendix + ([notes.read_text()] if notes and notes.exists() else [])
        )


def parts() -> dict[str, Part]:
    return {
        "f": Part(
            "(f) A fleet of agents sending small batches (issue 13)",
            "Arms alternated per round (ABC CBA; f4 ABBA).",
            "fleet.md",
        ),
        "g": Part("(g) What the agents cost an application (issue 18)"),
    }


def chosen(argv: list[str]) -> str:
    """The figures to measure: `python -m bench fg`, else BENCH_FIGURES, else every one.
    Anything else stops the run before it starts, with status 2."""
    figures = argv[0] if len(argv) == 1 else env("BENCH_FIGURES", report.EVERY)
    unknown = "".join(sorted(set(figures) - set(report.EVERY)))
    if len(argv) > 1 or unknown or not figures:
        why = f"no such figure: {unknown}" if unknown else "usage: python -m bench [FIGURES]"
        print(f"{why}; FIGURES are letters of {report.EVERY!r}, e.g. `python -m bench fg`")
        raise SystemExit(2)
    # In the order of the report, whatever the order given.
    return "".join(letter for letter in report.EVERY if letter in figures)
