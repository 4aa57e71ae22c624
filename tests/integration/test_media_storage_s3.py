"""The media storage interface over HTTP on an S3-compatible server (moto, on loopback)."""

from __future__ import annotations

import uuid

from distributor.media.storage import storage_from_url
from tests.support.media import exercise_storage, moto_s3_server


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
        exercise_storage(storage)
        # A second web machine configured the same way sees what the first stored.
        storage.put("downloads/k/r1-web.jpg", b"shared", "image/jpeg")
        assert storage_from_url(url, "elsewhere").read("downloads/k/r1-web.jpg") == b"shared"
