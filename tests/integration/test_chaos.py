"""A small ``make chaos`` in CI: real workers, a private Redis, the recording sink, one send of
a couple of thousand recipients per scenario, and the sink's journal against the ledger.

Each scenario must end at 0 duplicates, 0 lost and its in-doubt rows within the bound, inside
the harness's time limit: a relay that defers some recipients (relay-replies) must not stall
the rest of the send. The clock-skew scenarios are left to ``make chaos``: a send this small is over before a
skewed sweep has a fair chance to meet a live claim, so they pass or fail by luck here.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from benchmarks.chaos.config import Config
from benchmarks.chaos.run import prerequisites, run_scenario
from benchmarks.chaos.scenarios import BY_NAME
from tests.support.services import need, port_open

pytestmark = pytest.mark.integration

N = 1500

# The scenarios CI runs: the ones that matter most and finish fastest. ``make chaos`` runs all.
CI_SCENARIOS = [
    "sigkill-30-60",
    "flushall",
    "redis-down",
    "sender-refused",
    "postgres-kill9",
    "relay-replies",
]


@pytest.fixture(scope="module")
def chaos_config(tmp_path_factory: pytest.TempPathFactory) -> Config:
    server = os.environ.get("DATABASE_URL", "")
    need(
        server.startswith(("postgres://", "postgresql")),
        "make chaos needs PostgreSQL: DATABASE_URL does not point at a server",
    )
    need(port_open("127.0.0.1", 5432) or "127.0.0.1" not in server, "PostgreSQL is not up")
    # One worker host with two batches at a time: starting worker processes is most of the
    # cost of a small run.
    return Config(
        n=N,
        workers=1,
        concurrency=2,
        lanes=4,
        batch=250,
        claim_timeout=4,
        domains=100,
        paragraphs=2,
        redis_down_seconds=6.0,
        blackhole_seconds=6.0,
        server_url=server,
        work_root=Path(tmp_path_factory.mktemp("chaos")),
        settle_seconds=1.0,
    )


@pytest.mark.parametrize("name", CI_SCENARIOS)
def test_no_duplicate_and_nothing_lost_under_faults(name: str, chaos_config: Config) -> None:
    scenario = BY_NAME[name]
    reason = prerequisites(scenario, chaos_config)
    need(reason is None, f"{name}: {reason}")
    outcome = run_scenario(scenario, chaos_config)
    assert outcome.skipped is None, outcome.skipped
    assert outcome.error is None, outcome.line()
    verdict = outcome.verdict
    assert verdict is not None
    assert verdict.messages == N, outcome.line()
    assert verdict.duplicates == 0, outcome.line()
    assert verdict.lost == 0, outcome.line()
    assert verdict.in_doubt <= outcome.bound, outcome.line()
