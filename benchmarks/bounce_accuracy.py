"""How right our bounce reader is on the public corpora, against flufl.bounce alone.

Run: ``make bounce-accuracy`` (or ``.venv/bin/python -m benchmarks.bounce_accuracy``).
"""

from __future__ import annotations

import logging
import time

from tests.support.bounce_corpora import CORPORA, expected_rows, ours, score
from tests.unit.test_bounce_dsn import _blocks


def main() -> None:
    logging.disable(logging.CRITICAL)
    s = score()
    print(f"files: {s.files}")
    print(f"recipients and outcome right: ours {s.ours_right}, flufl.bounce alone {s.flufl_right}")
    print(f"also every recipient's kind right (ours only): {s.ours_right_with_kind}")
    print(
        f"well-formed DSNs: {s.dsn_files}; ours right with every kind {s.dsn_ours_right}, "
        f"flufl.bounce alone right on recipients {s.dsn_flufl_right} (it gives no kind)"
    )
    print(f"flufl.bounce right, ours wrong: {', '.join(s.flufl_only) or 'none'}")
    print(f"ours right, flufl.bounce wrong: {', '.join(s.ours_only) or 'none'}")
    start = time.perf_counter()
    rows = expected_rows()
    for row in rows:
        ours((CORPORA / row.name).read_bytes())
    elapsed = (time.perf_counter() - start) * 1000
    print(f"bounces: {len(rows)} files read in {elapsed:.0f} ms")
    for count in (4_000, 10_000):
        raw = _blocks(count)
        start = time.process_time()
        ours(raw)
        cpu = (time.process_time() - start) * 1000
        print(f"report with {count} recipient blocks ({len(raw) // 1024} KB): {cpu:.0f} ms CPU")


if __name__ == "__main__":
    main()
