"""The media storage interface on a local folder (the S3-compatible one: tests/integration)."""

from __future__ import annotations

from pathlib import Path

import pytest

from distributor.storage import (
    LocalStorage,
    S3Storage,
    storage_from_url,
)
from tests.support.media import exercise_storage


def test_local_storage(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    exercise_storage(storage)
    for bad in ("../etc/passwd", "/abs", "a/../../b", "UPPER"):
        with pytest.raises(ValueError, match="not a media storage key"):
            storage.exists(bad)


def test_storage_url_chooses_the_backend(tmp_path: Path) -> None:
    default = storage_from_url("", str(tmp_path))
    assert isinstance(default, LocalStorage)
    assert default.root == tmp_path / "media"
    assert isinstance(storage_from_url(f"file://{tmp_path}/m", "x"), LocalStorage)
    s3 = storage_from_url(
        "s3://key:secret@bucket/pre?endpoint=http://127.0.0.1:9&region=eu-west-1", "x"
    )
    assert isinstance(s3, S3Storage) and s3.bucket == "bucket" and s3.prefix == "pre/"
    with pytest.raises(ValueError, match="unknown option"):
        storage_from_url("s3://bucket?colour=blue", "x")
    with pytest.raises(ValueError, match="must be empty, file:///path or s3://"):
        storage_from_url("ftp://host/x", "x")
