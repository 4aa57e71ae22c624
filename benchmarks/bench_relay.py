"""Send through a real Postfix relay, and compare with Postfix's own ``smtp-source`` into it.

A private Postfix (its own configuration, queue and ports; Debian's postfix package, never the
system service) relays to a fast sink. ``bench_send`` runs the real product against it (real
workers, PostgreSQL, Redis), once in plaintext and once over STARTTLS with a certificate
signed by a private CA made for the run (trusted through ``ca_file`` in ``SMTP_URL``); then
``smtp-source`` pushes the same number of messages of the same size into the same Postfix. Postfix's queue (one fsync per message) is the limit here, so the ratio says how
close we come to what the relay itself can take. Postfix's log is read afterwards to check that
each of our messages went through exactly once.

    make bench-relay RELAY_N=20000

Last lines: ``relay: <N> messages through postfix[ (starttls)], <X> msg/s, smtp-source <Y>
msg/s, ratio <R>``.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.sinks import Sink, raw_smtp_rate, start_sink
from tests.support.postfix import PrivatePostfix, unavailable_reason
from tests.support.tls import issue_certificate, make_private_ca

ROOT = Path(__file__).resolve().parents[1]


def log(message: str) -> None:
    print(f"[bench-relay] {message}", flush=True)


def run(n: int, *, starttls: bool, work: Path) -> str:
    sink = start_sink(work)
    # Postfix's defaults, but enough smtpd processes for every lane of every batch.
    relay = PrivatePostfix(sink.port, main_cf={"default_process_limit": "200"})
    url = relay.url
    if starttls:
        # A private CA made for the run signs the relay's certificate; the workers trust that
        # CA alone, named in SMTP_URL, as a press office trusts its own relay.
        ca = make_private_ca(relay.folder / "ca")
        relay.tls = issue_certificate(relay.folder / "tls", ca)
        url += f"?starttls=required&ca_file={ca[0]}&tls_min=1.2"
    try:
        relay.start()
        env = dict(os.environ, BENCH_SMTP_URL=url, N=str(n))
        log(f"bench_send through {url}")
        out = subprocess.run(
            [sys.executable, str(ROOT / "benchmarks" / "bench_send.py"), "-n", str(n)],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        sys.stdout.write("".join(f"  {line}\n" for line in out.stdout.splitlines()[-6:]))
        rate_match = re.search(r"(\d+) msg/s end to end", out.stdout)
        size_match = re.search(r"message size (\d+) bytes", out.stdout)
        if out.returncode != 0 or rate_match is None or size_match is None:
            sys.stderr.write(out.stderr[-3000:])
            raise SystemExit(f"bench_send failed (exit {out.returncode})")
        rate, size = float(rate_match.group(1)), int(size_match.group(1))
        relay.wait_until_idle(timeout=max(120.0, n / 50))
        passed_on = relay.delivered()
        duplicates = sum(count - 1 for count in passed_on.sent.values() if count > 1)
        log(
            f"postfix passed on {sum(passed_on.sent.values())} messages "
            f"({len(passed_on.sent)} distinct Message-IDs, {n} sent by us), {duplicates} more than once, "
            f"{passed_on.deferred} deferrals, {passed_on.bounced} bounces"
        )
        raw = raw_smtp_rate(Sink("postfix", relay.port, sink.process), size, n, sessions=8)
        log(f"{raw.method}: {n} messages of {size} bytes into the same Postfix")
        mode = " (starttls)" if starttls else ""
        return (
            f"relay: {n} messages through postfix{mode}, {rate:.0f} msg/s, "
            f"smtp-source {raw.rate:.0f} msg/s, ratio {rate / raw.rate:.2f}"
        )
    finally:
        relay.stop()
        sink.stop()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=int(os.environ.get("N", "20000")))
    parser.add_argument("--mode", choices=["both", "plain", "starttls"], default="both")
    args = parser.parse_args()
    reason = unavailable_reason()
    if reason:
        raise SystemExit(f"bench-relay cannot run: {reason}")
    lines = []
    with tempfile.TemporaryDirectory(prefix="bench-relay-") as folder:
        work = Path(folder)
        for starttls in {"both": (False, True), "plain": (False,), "starttls": (True,)}[args.mode]:
            lines.append(run(args.n, starttls=starttls, work=work))
    for line in lines:
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
