"""Demo media library: pictures drawn locally (as the release demo does), with credits and
licences, one agency picture whose rights end in a few days, and a one-page PDF fact sheet."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from distributor.db import utcnow
from distributor.media import services
from distributor.media.models import LicenceKind, MediaAsset, MediaPageSection
from distributor.releases.demo import draw_scene, ensure_demo_beats
from distributor.releases.models import Release
from distributor.settings import Settings
from distributor.storage import storage_for

DEMO_TAG = "demo"
GALLERY_RELEASE = "tide-gauge-network-portmere-estuary"


def fact_sheet_pdf(lines: list[str]) -> bytes:
    """A one-page PDF (ISO 32000-1) with a few lines of Helvetica, built by hand."""
    text = (
        "BT /F1 14 Tf 72 760 Td 18 TL "
        + " ".join(
            "(" + line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ") '"
            for line in lines
        )
        + " ET"
    )
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(text), text.encode("latin-1")),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def seed_media(session: Session, settings: Settings) -> list[str]:
    """A small library with credits and licences, three items in a demo release's gallery."""
    if session.scalar(select(MediaAsset.id).where(MediaAsset.tags.like(f"%{DEMO_TAG}%"))):
        return []
    storage = storage_for(settings)
    beats = ensure_demo_beats(session)
    now = utcnow()
    items = [
        ("tide", "Tide gauge on the Portmere quay", services.AssetInput(
            title="Tide gauge on the Portmere quay",
            caption="One of the twelve school-built gauges, fixed to the old quay wall.",
            alt_text="A small grey sensor box on a harbour wall above the water",
            creator="Kerensa Lowe", copyright_holder="Harbour Light Foundation",
            licence=LicenceKind.OWN, has_consent=True, tags=f"{DEMO_TAG}, tide gauges, estuary",
            media_page=MediaPageSection.PICTURES,
            beat_ids=[beats["climate"].id],
        )),
        ("boats", "Boats at low tide (agency)", services.AssetInput(
            title="Boats at low tide",
            caption="Fishing boats resting on the mud at low water, Portmere.",
            alt_text="Small fishing boats lying on mud flats under an orange sky",
            creator="Ade Mensah", agency="Westcoast Pictures",
            copyright_holder="Westcoast Pictures Ltd", licence=LicenceKind.LICENSED_UNTIL,
            usage_notes="Editorial use with this release only.",
            rights_until=now + dt.timedelta(days=5), tags=f"{DEMO_TAG}, fisheries, boats",
            beat_ids=[beats["fisheries"].id],
        )),
        ("marsh", "Salt marsh restoration", services.AssetInput(
            title="Salt marsh restoration site",
            caption="The restored marsh at Penhallow, two years after the breach.",
            alt_text="Green salt marsh with water channels under a pale sky",
            creator="Sam Ortiz", copyright_holder="Sam Ortiz",
            licence=LicenceKind.CREATIVE_COMMONS, licence_version="CC BY 4.0",
            tags=f"{DEMO_TAG}, marsh, nature", beat_ids=[beats["climate"].id],
        )),
    ]  # fmt: skip
    assets = []
    for index, (scene, filename, details) in enumerate(items):
        assets.append(
            services.upload_asset(
                session,
                storage,
                data=draw_scene(scene, 100 + index),
                filename=f"{filename}.png",
                details=details,
                owner_id=None,
                now=now,
            )
        )
    assets.append(
        services.upload_asset(
            session,
            storage,
            data=fact_sheet_pdf(
                [
                    "Harbour Light Foundation: fact sheet",
                    "Founded 2009, Portmere",
                    "12 tide gauges, 40 volunteers, 3 estuaries",
                ]
            ),
            filename="Harbour Light fact sheet.pdf",
            details=services.AssetInput(
                title="Fact sheet: Harbour Light Foundation",
                creator="Harbour Light Foundation",
                copyright_holder="Harbour Light Foundation",
                licence=LicenceKind.OWN,
                tags=f"{DEMO_TAG}, fact sheet",
                media_page=MediaPageSection.FACT_SHEETS,
            ),
            owner_id=None,
            now=now,
        )
    )
    release = session.scalar(select(Release).where(Release.slug == GALLERY_RELEASE))
    if release is not None:
        for asset in assets[:2] + assets[3:]:
            services.add_to_release(session, release, asset, as_lead=False, actor_id=None, now=now)
    return [f"media: {len(assets)} library items, one whose rights end in 5 days"]
