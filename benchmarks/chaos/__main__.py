"""``make chaos``: the product's exactly-once promise checked under faults.

    python -m benchmarks.chaos [-n 10000] [--scenarios sigkill-30-60,flushall] [--list]

One line per scenario, then, as the last line:

    chaos: <S> scenarios, <N> messages, <D> duplicates, <L> lost, <U> in doubt (bound <B>)

Exit status 0 when every scenario that ran had no duplicate, nothing lost and its in-doubt rows
within its bound. See benchmarks/chaos/run.py for what runs, check.py for what counts.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import tempfile
from pathlib import Path

from benchmarks.chaos.config import Config
from benchmarks.chaos.outcome import Outcome, summary
from benchmarks.chaos.run import run_scenario
from benchmarks.chaos.scenarios import SCENARIOS, select


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = Config()
    parser = argparse.ArgumentParser(prog="python -m benchmarks.chaos", description=__doc__)
    parser.add_argument("-n", type=int, default=int(os.environ.get("CHAOS_N", defaults.n)))
    parser.add_argument(
        "--scenarios",
        default=os.environ.get("SCENARIOS", ""),
        help="comma-separated names (default: all); --list shows them",
    )
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    parser.add_argument("--workers", type=int, default=defaults.workers)
    parser.add_argument("--concurrency", type=int, default=defaults.concurrency)
    parser.add_argument("--lanes", type=int, default=defaults.lanes)
    parser.add_argument("--batch", type=int, default=defaults.batch)
    parser.add_argument("--claim-timeout", type=int, default=defaults.claim_timeout)
    parser.add_argument("--redis-down-seconds", type=float, default=defaults.redis_down_seconds)
    parser.add_argument("--blackhole-seconds", type=float, default=defaults.blackhole_seconds)
    parser.add_argument("--work-dir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep databases and work files")
    parser.add_argument("--inside-netns", default="", help=argparse.SUPPRESS)
    parser.add_argument("--result-file", type=Path, default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def config_from(args: argparse.Namespace) -> Config:
    server = os.environ.get("DATABASE_URL", "")
    if not server.startswith(("postgres://", "postgresql")):
        server = Config.server_url
    work = args.work_dir or Path(tempfile.gettempdir()) / f"chaos-{os.getpid()}"
    return Config(
        n=args.n,
        workers=args.workers,
        concurrency=args.concurrency,
        lanes=args.lanes,
        batch=args.batch,
        claim_timeout=args.claim_timeout,
        redis_down_seconds=args.redis_down_seconds,
        blackhole_seconds=args.blackhole_seconds,
        server_url=server,
        work_root=work,
        keep=args.keep,
    )


def _passed_on(args: argparse.Namespace) -> list[str]:
    """The options a scenario run inside the network namespaces gets from this one."""
    out = ["-n", str(args.n), "--concurrency", str(args.concurrency), "--lanes", str(args.lanes)]
    out += ["--batch", str(args.batch), "--claim-timeout", str(args.claim_timeout)]
    if args.keep:
        out.append("--keep")
    return out


def run_one(name: str, args: argparse.Namespace, cfg: Config) -> Outcome:
    scenario = select([name])[0]
    if name == "netns-partition" and not args.inside_netns:
        reason = scenario.unavailable(cfg) if scenario.unavailable else None
        if reason:
            return Outcome(name, skipped=reason)
        from benchmarks.chaos.netns import run_in_namespaces

        result = cfg.work_root / "netns-result.json"
        return run_in_namespaces([*_passed_on(args), "--scenarios", name], result)
    return run_scenario(scenario, cfg)


def main(argv: list[str] | None = None) -> int:
    # Make a SIGTERM (a timeout, Ctrl-C under make) run the cleanups: every process and
    # server a scenario started is stopped in its finally blocks.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    args = parse(argv)
    if args.list:
        for scenario in SCENARIOS:
            print(f"{scenario.name:24} {scenario.about}")
        return 0
    names = [n.strip() for n in args.scenarios.replace(" ", ",").split(",") if n.strip()]
    scenarios = select(names)
    cfg = config_from(args)
    if args.inside_netns:
        from benchmarks.chaos.netns import inside_config

        cfg = inside_config(cfg, args.inside_netns)
    cfg.work_root.mkdir(parents=True, exist_ok=True)
    outcomes: list[Outcome] = []
    for scenario in scenarios:
        outcome = run_one(scenario.name, args, cfg)
        outcomes.append(outcome)
        if args.result_file is not None:
            break  # inside the namespaces: the caller prints it
        print(outcome.line(), flush=True)
        if outcome.verdict is not None:
            for example in outcome.verdict.examples:
                print(f"    {example}", flush=True)
    with contextlib.suppress(OSError):
        cfg.work_root.rmdir()  # only when nothing was kept in it
    if args.result_file is not None:
        args.result_file.write_text(json.dumps(outcomes[0].to_dict()))
        return 0
    print(summary(outcomes), flush=True)
    return 0 if all(o.is_ok for o in outcomes) else 1


if __name__ == "__main__":
    raise SystemExit(main())
