"""Media library test helpers: images with camera and GPS EXIF, a moto S3 server, exiftool."""

from __future__ import annotations

import datetime as dt
import io
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from PIL import Image
from sqlalchemy.orm import Session

from distributor.db import utcnow
from distributor.media import services
from distributor.media.models import LicenceKind, MediaAsset
from distributor.storage import MediaFileMissing, MediaStorage, delete_prefix
from tests.support.services import free_port, need, port_open


def photo_with_exif(width: int = 2400, height: int = 1600, fmt: str = "JPEG") -> bytes:
    """A picture carrying what a camera writes: make, model, serial and a GPS position."""
    image = Image.new("RGB", (width, height), (30, 110, 150))
    exif = Image.Exif()
    exif[0x010F] = "CameraMaker"  # Make
    exif[0x0110] = "Model X100"  # Model
    gps = exif.get_ifd(0x8825)
    gps[1] = "N"
    gps[2] = (51.0, 30.0, 0.0)
    gps[3] = "W"
    gps[4] = (0.0, 7.0, 0.0)
    out = io.BytesIO()
    image.save(out, fmt, exif=exif.tobytes())
    return out.getvalue()


def details(**overrides: Any) -> services.AssetInput:
    values: dict[str, Any] = {
        "title": "Harbour wall at dawn",
        "caption": "The new flood wall at Portmere harbour.",
        "alt_text": "A concrete wall along a harbour at sunrise",
        "creator": "Jane Doe",
        "agency": "Coastline Pictures",
        "copyright_holder": "Coastline Pictures Ltd",
        "licence": LicenceKind.EDITORIAL,
        "usage_notes": "Not for advertising.",
        "tags": "Flood, harbour",
    }
    values.update(overrides)
    return services.AssetInput(**values)


def add_asset(
    session: Session,
    storage: MediaStorage,
    *,
    data: bytes | None = None,
    filename: str = "harbour.jpg",
    now: dt.datetime | None = None,
    **overrides: object,
) -> MediaAsset:
    return services.upload_asset(
        session,
        storage,
        data=data if data is not None else photo_with_exif(),
        filename=filename,
        details=details(**overrides),
        owner_id=None,
        now=now or utcnow(),
    )


@contextmanager
def moto_s3_server() -> Iterator[str]:
    """moto's standalone S3-compatible server on a free loopback port; yields its URL."""
    need(shutil.which("moto_server") is not None or _has_moto(), "moto[server] is not installed")
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not port_open("127.0.0.1", port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("moto server did not start")
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _has_moto() -> bool:
    try:
        import moto.server  # noqa: F401
    except ImportError:
        return False
    return True


def exiftool(data: bytes) -> dict[str, object]:
    """Every tag exiftool (an independent reader) finds, grouped as ``Group:Tag``."""
    tool = shutil.which("exiftool")
    need(tool is not None, "exiftool is not installed (apt-get install libimage-exiftool-perl)")
    assert tool is not None
    result = subprocess.run(
        [tool, "-j", "-G1", "-struct", "-"],
        input=data,
        capture_output=True,
        check=True,
        timeout=60,
    )
    found: dict[str, object] = json.loads(result.stdout)[0]
    return found


def exercise_storage(storage: MediaStorage) -> None:
    """Every operation of the storage interface, on an empty ``storage``."""
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
