"""Snapshot comparison: a snapshot is written only on request, never because it is missing.

``UPDATE_SNAPSHOTS=1`` (re)writes the files; without it a missing snapshot fails like a changed
one, so a test whose snapshot was deleted or never committed cannot pass by writing its own.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SNAPSHOTS = Path(__file__).resolve().parent.parent / "unit" / "snapshots"


def assert_matches_snapshot(name: str, current: str, *, folder: Path = SNAPSHOTS) -> None:
    """Fail unless ``current`` equals the committed snapshot ``<folder>/<name>.txt``."""
    snapshot = folder / f"{name}.txt"
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        folder.mkdir(parents=True, exist_ok=True)
        snapshot.write_text(current)
    if not snapshot.exists():
        pytest.fail(f"no snapshot {snapshot.name}; run with UPDATE_SNAPSHOTS=1 to write it")
    assert current == snapshot.read_text(), (
        f"{name} changed; rerun with UPDATE_SNAPSHOTS=1 if intended"
    )
