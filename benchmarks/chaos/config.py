"""Sizes and timings of a chaos run."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Config:
    """Sizes and timings of a chaos run (``python -m benchmarks.chaos --help``)."""

    n: int = 10_000
    workers: int = 3  # worker hosts (celery worker processes)
    concurrency: int = 1  # batches one worker host runs at once (prefork children)
    lanes: int = 4  # DELIVERY_CONNECTIONS_PER_BATCH
    batch: int = 500  # DELIVERY_BATCH_SIZE
    claim_timeout: int = 8  # DELIVERY_CLAIM_TIMEOUT_SECONDS
    domains: int = 200
    paragraphs: int = 4
    redis_down_seconds: float = 30.0
    blackhole_seconds: float = 20.0
    server_url: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    work_root: Path = Path("/tmp/chaos")
    keep: bool = False
    settle_seconds: float = 3.0  # watched after the send finished, before checking
    # Network namespaces: the gateway address each worker host uses, and its namespace.
    worker_hosts: list[tuple[str, str]] | None = None
    service_hosts: list[str] = field(default_factory=lambda: ["127.0.0.1"])
    netns_prefix: str = ""

    @property
    def connections(self) -> int:
        """SMTP connections that can be mid-final-dot at one moment, over all hosts."""
        return self.workers * self.concurrency * self.lanes

    @property
    def connections_per_worker(self) -> int:
        return self.concurrency * self.lanes
