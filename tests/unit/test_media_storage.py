"""The media storage interface, on a local folder and over HTTP on an S3-compatible server."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from distributor.storage import (
    LocalStorage,
    MediaFileMissing,
    MediaStorage,
    S3Storage,
    delete_prefix,
    storage_from_url,
)
from tests.support.media import moto_s3_server


def _exercise(storage: MediaStorage) -> None:
    key = "originals/abc123.jpg"
    assert not storage.exists(key)
    with pytest.raises(MediaFileMissing):
        storage.read(key)
    with pytest.raises(MediaFileMissing):
        storage.stream(key)
    data = bytes(range(256)) * 2000  # spans several stream chunks
    storage.put(key, data, "image/jpeg")
    assert storage.exists(key)
    assert storage.read(key) == data
    assert b"".join(storage.stream(key)) == data
    storage.put(key, b"replaced", "image/jpeg")
    assert storage.read(key) == b"replaced"
    storage.put("originals/sub/other.png", b"x", "image/png")
    storage.put("originalsx/not-under.png", b"x", "image/png")
    assert sorted(storage.keys("originals/")) == [key, "originals/sub/other.png"]
    assert list(storage.keys("nothing/")) == []
    assert delete_prefix(storage, "originals/", keep=key) == 1
    assert sorted(storage.keys("originals")) == [key]
    storage.delete("originalsx/not-under.png")
    storage.delete(key)
    storage.delete(key)  # deleting what is gone is no error
    assert not storage.exists(key)


def test_local_storage(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    _exercise(storage)
    for bad in ("../etc/passwd", "/abs", "a/../../b", "UPPER"):
        with pytest.raises(ValueError):
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
    with pytest.raises(ValueError):
        storage_from_url("s3://bucket?colour=blue", "x")
    with pytest.raises(ValueError):
        storage_from_url("ftp://host/x", "x")


@pytest.mark.integration
def test_s3_storage_over_http_against_a_local_server() -> None:
    with moto_s3_server() as endpoint:
        import boto3

        bucket = f"media-{uuid.uuid4().hex[:8]}"
        boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        ).create_bucket(Bucket=bucket)
        url = f"s3://test:test@{bucket}/newsroom?endpoint={endpoint}&region=us-east-1"
        storage = storage_from_url(url, "unused")
        _exercise(storage)
        # A second web machine configured the same way sees what the first stored.
        storage.put("downloads/k/r1-web.jpg", b"shared", "image/jpeg")
        assert storage_from_url(url, "elsewhere").read("downloads/k/r1-web.jpg") == b"shared"
