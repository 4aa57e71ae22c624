"""The faults of ``make chaos``, one scenario each (one send of N recipients per scenario)."""

from __future__ import annotations

import signal
import time

from sqlalchemy import text

from benchmarks.chaos.config import Config
from benchmarks.chaos.infra import faketime_env, faketime_unavailable
from benchmarks.chaos.netns import netns_available
from benchmarks.chaos.run import Run, Scenario
from benchmarks.chaos.sink import SinkFaults


def _sigkill_all(run: Run) -> None:
    for fraction in (0.3, 0.6):
        if not run.wait_accepted(fraction):
            run.notes.append(f"the send ended before {fraction:.0%}")
            return
        for worker in run.workers:
            worker.kill()
        run.note_fault("every worker SIGKILLed")
        time.sleep(1.0)
        run.start_workers()


def _sigstop_one(run: Run) -> None:
    if not run.wait_accepted(0.4):
        run.notes.append("the send ended before 40%")
        return
    held = run.cfg.claim_timeout * 2 + 4
    victim = run.workers[1 % len(run.workers)]
    victim.signal(signal.SIGSTOP)
    run.note_fault(f"one worker SIGSTOPped for {held}s (claim timeout {run.cfg.claim_timeout}s)")
    time.sleep(held)
    victim.signal(signal.SIGCONT)


def _nothing(run: Run) -> None:
    """The fault is on for the whole send (set up before it started)."""


def _flushall(run: Run) -> None:
    if run.wait_accepted(0.5):
        run.redis.flushall()
        run.note_fault("FLUSHALL")


def _redis_down(run: Run) -> None:
    if not run.wait_accepted(0.4):
        return
    run.redis.kill()
    run.note_fault(f"Redis killed for {run.cfg.redis_down_seconds:.0f}s")
    time.sleep(run.cfg.redis_down_seconds)
    run.redis.start()


def _terminate_backends(run: Run) -> None:
    if not run.wait_accepted(0.4):
        return
    assert run.engine is not None
    with run.engine.connect() as conn:
        killed = conn.execute(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ).scalar()
        conn.commit()
    run.note_fault(f"{killed} backends terminated")


def _kill_postgres(run: Run) -> None:
    if not run.wait_accepted(0.4):
        return
    assert run.pg is not None
    run.pg.kill9()
    run.note_fault("PostgreSQL killed -9, restarted 3s later")
    time.sleep(3.0)
    run.pg.restart_after_crash()


def _refuse_sender(run: Run) -> None:
    if not run.wait_accepted(0.2):
        return
    run.fault_over = False
    run.sink.set_faults(SinkFaults(mode="sender_refused"))
    run.note_fault("relay refusing the envelope sender")
    # Long enough for every batch to meet the refusal; then the operator fixes the sender
    # domain and (if the send paused) resumes it.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        state = run.send_state()
        if state is not None and state[0] in ("paused", "finished"):
            run.notes.append(f"send {state[0]} during the refusal")
            time.sleep(1.0)
            break
        time.sleep(0.25)
    run.sink.set_faults(SinkFaults())


def _blackhole(run: Run) -> None:
    if not run.wait_accepted(0.3):
        return
    run.sink.set_faults(SinkFaults(mode="blackhole"))
    run.note_fault(f"relay blackholing connects for {run.cfg.blackhole_seconds:.0f}s")
    time.sleep(run.cfg.blackhole_seconds)
    run.sink.set_faults(SinkFaults())


def _partition(run: Run) -> None:
    from benchmarks.chaos.netns import cut, heal

    if not run.wait_accepted(0.4):
        return
    cut(run.cfg, 1)
    run.note_fault("host 2 of 3 cut off")

    def heal_and_watch() -> None:
        # Back on the network, the cut-off host's worker finds its claims taken: give its
        # TCP retransmissions time to get through, so whatever it does next is checked too.
        heal(run.cfg, 1)
        run.notes.append("healed after the send")
        time.sleep(10.0)

    run.on_done.append(heal_and_watch)


RELAY_REPLIES = SinkFaults(tempfail_every=50, hardfail_every=97, drop_every=500, reply_delay=0.003)

SCENARIOS: list[Scenario] = [
    Scenario("sigkill-30-60", "SIGKILL of every worker at 30% and at 60%", _sigkill_all, events=2),
    Scenario(
        "sigstop-worker",
        "SIGSTOP of one worker for twice the claim timeout",
        _sigstop_one,
        is_one_host=True,
    ),
    Scenario(
        "clock-ahead",
        "one worker host's clock 2 minutes ahead (libfaketime)",
        _nothing,
        prepare=lambda run: run.worker_overrides.update({0: faketime_env(120)}),
        unavailable=lambda _cfg: faketime_unavailable(),
    ),
    Scenario(
        "clock-behind",
        "one worker host's clock 2 minutes behind (libfaketime)",
        _nothing,
        prepare=lambda run: run.worker_overrides.update({0: faketime_env(-120)}),
        unavailable=lambda _cfg: faketime_unavailable(),
    ),
    Scenario("flushall", "FLUSHALL of the private Redis at 50%", _flushall),
    Scenario(
        "redis-down",
        "Redis killed at 40% and down for a while, rate limits on",
        _redis_down,
        env={"DELIVERY_RATE_PER_SECOND": "2000", "DELIVERY_DOMAIN_RATE_PER_SECOND": "40"},
    ),
    Scenario(
        "db-backends-terminated",
        "every database backend terminated at 40%",
        _terminate_backends,
    ),
    Scenario(
        "postgres-kill9",
        "the private PostgreSQL server killed -9 at 40%, then restarted",
        _kill_postgres,
        private_pg=True,
    ),
    Scenario(
        "sender-refused",
        "the relay refuses our envelope sender (550 5.1.8 at MAIL FROM) from 20% for 10 s",
        _refuse_sender,
    ),
    Scenario(
        "relay-blackhole",
        "the relay blackholes connects (and closes open sessions with 421) from 30%",
        _blackhole,
    ),
    Scenario(
        "relay-replies",
        "451 once, 550 5.1.1, drops after the final dot and slow replies throughout",
        _nothing,
        sink_faults=RELAY_REPLIES,
        events=0,
    ),
    Scenario(
        "netns-partition",
        "workers on three network hosts; one cut off at 40%",
        _partition,
        is_one_host=True,
        private_pg=True,
        unavailable=lambda _cfg: netns_available(),
    ),
]

BY_NAME = {s.name: s for s in SCENARIOS}


def select(names: list[str] | None) -> list[Scenario]:
    if not names:
        return list(SCENARIOS)
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        raise SystemExit(f"unknown scenarios: {', '.join(unknown)}; known: {', '.join(BY_NAME)}")
    return [BY_NAME[n] for n in names]


__all__ = ["SCENARIOS", "Config", "select"]
