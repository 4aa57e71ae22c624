"""Micro-benchmark of per-recipient release rendering (``CompiledRelease.message_for``).

Prints microseconds per ``message_for()`` call with tracking on and off, with DKIM signing
(RSA-2048, signed through OpenSSL), and the one-off compile time, for a typical release. Figures, not
assertions: run ``python benchmarks/bench_render.py [-n N]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402

from distributor.db import Database, make_engine  # noqa: E402
from distributor.delivery.rendering import Recipient, compile_release  # noqa: E402
from distributor.migrate import upgrade  # noqa: E402
from distributor.settings import Settings  # noqa: E402
from tests.support import delivery_factories as f  # noqa: E402


def per_call_us(fn: object, n: int) -> float:
    call = fn
    for _ in range(min(n, 200)):  # warm up
        call()  # type: ignore[operator]
    # CPU time of this process: other work on a shared machine does not inflate the figure.
    start = time.process_time()
    for _ in range(n):
        call()  # type: ignore[operator]
    return (time.process_time() - start) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=20_000, help="render() calls per figure")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-render-"))
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_path = tmp / "dkim.pem"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    settings = Settings(
        env="test",
        secret_key="bench-secret-key-0123456789abcdefghijkl",
        data_dir=str(tmp),
        public_base_url="https://news.harbourlight.example",
    )
    engine = make_engine(settings.sqlalchemy_url)
    with engine.begin() as conn:
        upgrade(settings.sqlalchemy_url, conn)
    db = Database(engine)
    with db.session() as session:
        f.organisation(session, settings, tracking=True)
        release = f.release(session)
        journalist = f.journalist(session, name="Jane O'Doe")
        session.commit()

        compile_release(session, release.id, settings)  # first call pays for imports
        start = time.process_time()
        compiled = compile_release(session, release.id, settings)
        compile_ms = (time.process_time() - start) * 1000
        signing = dataclasses.replace(
            settings, dkim_selector="bench", dkim_private_key_path=str(key_path)
        )
        signed = compile_release(session, release.id, signing)
        session.commit()

    def recipient(tracking: bool) -> Recipient:
        return Recipient(
            delivery_id=1,
            journalist_id=journalist.id,
            email=journalist.email,
            name=journalist.name,
            verp_token="Qm9uZFRva2VuXzEyMzQ1Ng",
            matched_beats="Climate, Coastal towns",
            is_tracking_allowed=tracking,
        )

    tracked, untracked = recipient(True), recipient(False)
    size = len(compiled.message_for(tracked)[2])
    n = args.n
    us_tracked = per_call_us(lambda: compiled.message_for(tracked), n)
    us_untracked = per_call_us(lambda: compiled.message_for(untracked), n)
    us_dkim = per_call_us(lambda: signed.message_for(tracked), max(200, n // 20))
    print(f"compile_release: {compile_ms:.1f} ms CPU once per release (Jinja, MJML, headers)")
    print(f"message: {size} bytes, HTML part {compiled.html_size} bytes")
    print(f"render, tracking off: {us_untracked:.1f} us/message")
    print(f"render + DKIM (RSA-2048, OpenSSL): {us_dkim:.1f} us/message")
    print(
        f"render: {us_tracked:.1f} us/message with tracking "
        f"({1e6 / us_tracked:,.0f} messages/s on one core)"
    )
    engine.dispose()


if __name__ == "__main__":
    main()
