"""Shared benchmark helpers: latency percentiles and a result table."""

from __future__ import annotations

import statistics
from dataclasses import dataclass


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


@dataclass
class Result:
    name: str
    throughput: float  # per second
    p50_ms: float
    p99_ms: float
    count: int

    @staticmethod
    def of(name: str, count: int, seconds: float, latencies_s: list[float]) -> Result:
        ms = [x * 1000 for x in latencies_s]
        return Result(name, count / seconds if seconds else 0.0, percentile(ms, 50), percentile(ms, 99), count)


def table(title: str, rows: list[Result], unit: str = "events/s") -> str:
    out = [f"\n{title}", f"{'path':<44} {unit:>12} {'p50 ms':>9} {'p99 ms':>9} {'n':>7}"]
    out += [f"{r.name:<44} {r.throughput:>12.0f} {r.p50_ms:>9.2f} {r.p99_ms:>9.2f} {r.count:>7}" for r in rows]
    return "\n".join(out)


def mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else float("nan")
