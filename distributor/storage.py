"""Where media files live: one small interface, a local folder or an S3-compatible store.

Several web machines can serve one newsroom only if they read the same files, so every media
file goes through ``MediaStorage``. The local folder (under ``DATA_DIR``) is the default; with
``MEDIA_STORAGE_URL=s3://bucket?endpoint=...&region=...`` the files live in an object store
speaking the Amazon S3 REST API (AWS, MinIO, Ceph RGW, Garage...). Keys are relative paths made
of ``[a-z0-9/._-]``; the app always streams files itself, so expired rights are enforced
in one place and no object store URL ever reaches a journalist.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from distributor.settings import Settings

_KEY = re.compile(r"[a-z0-9][a-z0-9._-]*(/[a-z0-9][a-z0-9._-]*)*")
CHUNK = 256 * 1024


class StorageError(RuntimeError):
    """The store refused or could not be reached."""


class MediaFileMissing(KeyError):
    """No file under that key."""


def check_key(key: str) -> str:
    if not _KEY.fullmatch(key) or ".." in key:
        raise ValueError(f"not a media storage key: {key!r}")
    return key


class MediaStorage(Protocol):
    def put(self, key: str, data: bytes, content_type: str) -> None:
        """Store ``data`` under ``key``, replacing what was there (atomically)."""

    def read(self, key: str) -> bytes:
        """The whole file; raise ``MediaFileMissing``."""

    def stream(self, key: str) -> Iterator[bytes]:
        """The file in chunks, for responses; raise ``MediaFileMissing`` before the first."""

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None:
        """Remove the file; a missing file is not an error."""

    def keys(self, prefix: str) -> Iterator[str]:
        """The keys under a folder-like ``prefix`` ("downloads/abc/"), in no set order."""


class LocalStorage:
    """Files under one folder; writes go to a temporary file renamed into place."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put(self, key: str, data: bytes, content_type: str) -> None:  # noqa: ARG002 - a file keeps no content type; S3Storage stores it
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def read(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError as exc:
            raise MediaFileMissing(key) from exc

    def stream(self, key: str) -> Iterator[bytes]:
        try:
            handle = self._path(key).open("rb")
        except FileNotFoundError as exc:
            raise MediaFileMissing(key) from exc

        def chunks() -> Iterator[bytes]:
            with handle:
                while block := handle.read(CHUNK):
                    yield block

        return chunks()

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def keys(self, prefix: str) -> Iterator[str]:
        folder = self.root / check_key(prefix.rstrip("/"))
        if not folder.is_dir():
            return
        for path in folder.rglob("*"):
            if path.is_file() and not path.name.startswith(".tmp-"):
                yield path.relative_to(self.root).as_posix()


class S3Storage:
    """An S3-compatible bucket through boto3 (path-style addressing, so any endpoint works)."""

    def __init__(
        self,
        bucket: str,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
        prefix: str = "",
    ) -> None:
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        # Without explicit keys boto3 uses its standard chain (AWS_ACCESS_KEY_ID..., instance
        # roles), which is how object stores are usually configured.
        self._client: Any = boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            config=Config(
                s3={"addressing_style": "path"},
                retries={"max_attempts": 3, "mode": "standard"},
                connect_timeout=5,
                read_timeout=30,
            ),
        )

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    def _missing(self, exc: Exception) -> bool:
        code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
        return code in {"404", "NoSuchKey", "NotFound"}

    def put(self, key: str, data: bytes, content_type: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._client.put_object(
                Bucket=self.bucket, Key=self._key(key), Body=data, ContentType=content_type
            )
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"could not store {key}: {exc}") from exc

    def _get(self, key: str) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return self._client.get_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if self._missing(exc):
                raise MediaFileMissing(key) from exc
            raise StorageError(f"could not read {key}: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"could not read {key}: {exc}") from exc

    def read(self, key: str) -> bytes:
        body = self._get(key)["Body"]
        with body:
            data: bytes = body.read()
        return data

    def stream(self, key: str) -> Iterator[bytes]:
        body = self._get(key)["Body"]

        def chunks() -> Iterator[bytes]:
            with body:
                yield from body.iter_chunks(CHUNK)

        return chunks()

    def exists(self, key: str) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if self._missing(exc):
                return False
            raise StorageError(f"could not check {key}: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"could not check {key}: {exc}") from exc
        return True

    def delete(self, key: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"could not delete {key}: {exc}") from exc

    def keys(self, prefix: str) -> Iterator[str]:
        from botocore.exceptions import BotoCoreError, ClientError

        full = self.prefix + check_key(prefix.rstrip("/")) + "/"
        try:
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=full
            )
            for page in pages:
                for item in page.get("Contents", []):
                    yield str(item["Key"])[len(self.prefix) :]
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"could not list {prefix}: {exc}") from exc


def delete_prefix(storage: MediaStorage, prefix: str, *, keep: str = "") -> int:
    """Remove every file under ``prefix`` except ``keep``; returns how many went."""
    gone = 0
    for key in list(storage.keys(prefix)):
        if key != keep:
            storage.delete(key)
            gone += 1
    return gone


def import_local_files(source: Path, storage: MediaStorage) -> tuple[int, int]:
    """Copy files kept in a local folder (``DATA_DIR/media``) into ``storage``: the backfill
    when moving to an object store. Lead photos, attachments and logos keep their keys; the
    library's files, once under ``library/``, lose that folder. Files already stored are
    skipped, so it can run again. Returns (copied, skipped)."""
    import mimetypes

    copied = skipped = 0
    for path in sorted(source.rglob("*")):
        if not path.is_file() or path.name.startswith((".tmp", ".")) or path.suffix == ".tmp":
            continue
        rel = path.relative_to(source).as_posix()
        key = rel.removeprefix("library/")
        try:
            check_key(key)
        except ValueError:
            skipped += 1
            continue
        if storage.exists(key):
            skipped += 1
            continue
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        storage.put(key, path.read_bytes(), content_type)
        copied += 1
    return copied, skipped


def storage_from_url(url: str, data_dir: str) -> MediaStorage:
    """``""`` or ``file:///path`` -> a local folder; ``s3://[key:secret@]bucket[/prefix]?...``."""
    if not url:
        return LocalStorage(local_root(data_dir))
    parts = urlsplit(url)
    if parts.scheme == "file":
        return LocalStorage(Path(unquote(parts.path)))
    if parts.scheme == "s3":
        if not parts.hostname:
            raise ValueError("MEDIA_STORAGE_URL: s3:// needs a bucket name")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        unknown = set(query) - {"endpoint", "region"}
        if unknown:
            raise ValueError(f"MEDIA_STORAGE_URL: unknown option(s) {', '.join(sorted(unknown))}")
        return S3Storage(
            parts.hostname,
            endpoint_url=query.get("endpoint") or None,
            region=query.get("region") or None,
            access_key=unquote(parts.username) if parts.username else None,
            secret_key=unquote(parts.password) if parts.password else None,
            prefix=parts.path,
        )
    raise ValueError("MEDIA_STORAGE_URL must be empty, file:///path or s3://bucket?...")


def local_root(data_dir: str) -> Path:
    """The default folder of every stored file (lead photos, attachments, logos, library)."""
    return Path(data_dir) / "media"


def storage_for(settings: Settings) -> MediaStorage:
    return storage_from_url(settings.media_storage_url, settings.data_dir)


def app_storage() -> MediaStorage:
    """The running app's storage (``create_app`` builds it once, tests may inject one)."""
    from flask import current_app

    storage: MediaStorage = current_app.extensions["distributor.media_storage"]
    return storage


def stored_response(
    storage: MediaStorage,
    key: str,
    content_type: str,
    *,
    cache: str,
    download_name: str | None = None,
) -> Any:
    """A response streaming a stored file (404 when it is missing). Keys never change
    content, so the key is the entity tag and a revalidation costs no read (RFC 9110 8.8.3)."""
    import hashlib
    from urllib.parse import quote

    from flask import abort, request
    from werkzeug.wrappers import Response

    etag = hashlib.sha256(key.encode()).hexdigest()[:32]
    if request.if_none_match.contains(etag):
        response = Response(status=304)
    else:
        try:
            body = storage.stream(key)
        except MediaFileMissing:
            abort(404)
        response = Response(body, mimetype=content_type, direct_passthrough=True)
        if download_name is not None:
            ascii_name = download_name.encode("ascii", "replace").decode().replace('"', "")
            response.headers["Content-Disposition"] = (
                f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(download_name)}"
            )
    response.set_etag(etag)
    response.headers["Cache-Control"] = cache
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
