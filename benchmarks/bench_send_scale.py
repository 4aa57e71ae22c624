"""``make bench-scale``: ``bench_send`` at several sizes, and a table of what stays flat.

Runs ``benchmarks/bench_send.py`` once per size (default 10,000, 100,000 and 1,000,000
recipients; ``SIZES=10000,100000`` or ``--sizes`` for fewer), each in a fresh throwaway
database, reads the ``figures`` line each run prints, and prints a Markdown table: rate, freeze
time and its share of the send, PostgreSQL, worker and Redis CPU per message, worker peak RSS
and the ratio to raw SMTP. The last line compares the largest size with the 100,000 run:

    scale: rate at <N> = <P>% of the 100000 rate, freeze <F>% of the send, worker RSS <M> MB
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def run(n: int) -> dict[str, Any]:
    """One bench_send run; its figures (the JSON of its ``figures`` line)."""
    print(f"[bench-scale] N={n} ...", flush=True)
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "benchmarks" / "bench_send.py"), "-n", str(n)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    figures: dict[str, Any] | None = None
    assert proc.stdout is not None
    for line in proc.stdout:
        print("    " + line.rstrip(), flush=True)
        if line.startswith("[bench-send] figures "):
            figures = json.loads(line.split(" ", 2)[2])
    if proc.wait() != 0 or figures is None:
        raise SystemExit(f"bench_send -n {n} failed (exit {proc.returncode})")
    print(f"[bench-scale] N={n} took {time.monotonic() - started:.0f}s", flush=True)
    return figures


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| N | msg/s | ratio to raw SMTP | freeze s | freeze % of send | PostgreSQL us/msg "
        "| workers us/msg | Redis us/msg | worker peak RSS MB |\n"
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    )
    lines = [head]
    for f in rows:
        cpu = f["cpu_us"]
        lines.append(
            f"| {f['n']:,} | {f['rate']:.0f} | {f['ratio']:.2f} | {f['freeze_seconds']:.2f} "
            f"| {100 * f['freeze_seconds'] / f['seconds']:.1f} | {cpu['postgres']:.0f} "
            f"| {cpu['workers']:.0f} | {cpu['redis']:.0f} | {f['worker_rss_mb']:.0f} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--sizes", default=os.environ.get("SIZES", "10000,100000,1000000"), help="comma-separated"
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    rows = [run(n) for n in sizes]
    print(table(rows), flush=True)
    by_n = {f["n"]: f for f in rows}
    largest = rows[-1]
    base = by_n.get(100_000)
    share = 100 * largest["freeze_seconds"] / largest["seconds"]
    if base is not None and largest is not base:
        print(
            f"scale: rate at {largest['n']} = {100 * largest['rate'] / base['rate']:.0f}% of the "
            f"100000 rate, freeze {share:.1f}% of the send, "
            f"worker RSS {largest['worker_rss_mb']:.0f} MB",
            flush=True,
        )
    else:
        print(
            f"scale: {largest['n']} messages at {largest['rate']:.0f} msg/s, freeze {share:.1f}% "
            f"of the send, worker RSS {largest['worker_rss_mb']:.0f} MB",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
