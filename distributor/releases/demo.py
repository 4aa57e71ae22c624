"""Demo newsroom content for the fictional Harbour Light Foundation (all text written for this
project), with lead photos drawn locally by Pillow so the first start needs no network."""

from __future__ import annotations

import datetime as dt
import io
import math
import random
from collections.abc import Callable
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFilter
from sqlalchemy import select
from sqlalchemy.orm import Session

from distributor.audience.models import Beat
from distributor.db import utcnow
from distributor.releases import media, services
from distributor.releases.models import PressContact, Release, ReleaseKind, ReleaseStatus
from distributor.settings import Settings
from distributor.storage import storage_for

DEMO_BEATS = [
    ("climate", "Climate"),
    ("coastal-communities", "Coastal communities"),
    ("fisheries", "Fisheries"),
    ("housing", "Housing"),
    ("health", "Health"),
    ("policy", "Policy"),
]

DEMO_CONTACTS = [
    ("Morwenna Pike", "Head of Communications", "morwenna.pike@harbourlight.example", "+44 1632 960 114"),
    ("Tobias Quayle", "Press Officer, Fisheries and Food", "tobias.quayle@harbourlight.example", "+44 1632 960 207"),
    ("Aisha Trevelyan", "Press Officer, Housing and Health", "aisha.trevelyan@harbourlight.example", "+44 1632 960 318"),
]  # fmt: skip


@dataclass(frozen=True)
class DemoRelease:
    slug: str
    kind: str
    title: str
    summary: str
    body: str
    beats: tuple[str, ...]
    days_ago: float
    scene: str
    caption: str
    credit: str
    alt: str
    contacts: tuple[int, ...] = (0,)
    state: str = "published"  # published | embargoed | in_review | draft


DEMO_RELEASES: list[DemoRelease] = [
    DemoRelease(
        slug="tide-gauge-network-portmere-estuary",
        kind="Press release",
        title="Volunteers switch on a twelve-station tide gauge network along the Portmere estuary",
        summary="Low-cost sensors built by a harbour school now report water levels every five "
        "minutes, giving three villages forty minutes' more warning of surge tides.",
        body="""Twelve tide gauges built by students at Portmere Harbour School went live this
week along the estuary, feeding readings every five minutes to a public dashboard and to the
coastguard's duty officer.

The network fills a gap between the national gauge at the river mouth and the three villages
upstream, where surge water arrives up to forty minutes later than at the coast.

> "We used to watch the slipway and guess. Now my phone tells me the water is rising at
> Crannock before it reaches us," said **Elin Rowe**, who chairs the Saltings flood group.

## How it works

- Each gauge is an ultrasonic sensor on a galvanised post, powered by a small solar panel.
- Readings travel over a community LoRa network; no mobile signal is needed.
- Data is published under an open licence for researchers and the local council.

The Foundation funded the hardware and the training; the school will maintain the gauges as
part of its engineering curriculum.""",
        beats=("climate", "coastal-communities"),
        days_ago=1.2,
        scene="tide",
        caption="A student checks a solar-powered tide gauge on the Crannock slipway.",
        credit="Ines Carrow / Harbour Light Foundation",
        alt="A tide gauge on a post at the edge of a grey estuary under a pale sky",
    ),
    DemoRelease(
        slug="inshore-catch-survey-2026",
        kind="Report",
        title="Inshore catch survey 2026: smaller boats land more species, but earn less per trip",
        summary="Our third annual survey of 214 inshore skippers finds catches diversifying as "
        "waters warm, while fuel and bait costs cut take-home pay by a fifth.",
        body="""The **Inshore Catch Survey 2026** draws on logbooks and interviews with 214
skippers of boats under ten metres working out of nine harbours.

## Key findings

| Measure | 2024 | 2026 |
|:--|--:|--:|
| Species landed per boat | 6.1 | 8.4 |
| Average trips per month | 14 | 12 |
| Net earnings per trip | £312 | £251 |

Squid, red mullet and black bream now appear in logbooks where they were rare five years ago.
Skippers report that new species bring new gear costs and limited local buyers.

## Recommendations

1. A shared cold store and auction day for small landings in each harbour district.
2. Fuel support tied to low-impact gear rather than to engine size.
3. A seat for inshore skippers on the regional quota advisory board.

The full report and the anonymised data tables are attached.""",
        beats=("fisheries", "climate"),
        days_ago=4,
        scene="boats",
        caption="Inshore boats moored at Portmere quay at first light.",
        credit="Davey Lusk / Harbour Light Foundation",
        alt="Small fishing boats moored in a harbour at sunrise",
        contacts=(1,),
    ),
    DemoRelease(
        slug="statement-coastal-erosion-funding-formula",
        kind="Statement",
        title="Statement on the revised coastal erosion funding formula",
        summary="The new formula rewards places with high property values and leaves small "
        "working harbours behind. We ask ministers to weight it by community need.",
        body="""Harbour Light Foundation responds to today's publication of the revised coastal
erosion funding formula.

The formula scores schemes mainly on the value of property protected. That is simple to
calculate, but it means a cliff-top estate of holiday homes can outrank a harbour on which two
hundred jobs depend.

We ask the department to:

- weight scores by the share of local jobs that depend on the frontage;
- count community buildings such as schools and surgeries at their replacement cost;
- publish the scores of every scheme, funded or not.

We will publish our own analysis of the formula's effect on the forty harbours we work with
before the consultation closes.""",
        beats=("policy", "coastal-communities"),
        days_ago=7,
        scene="cliff",
        caption="The eroding cliff path above Trennick Cove.",
        credit="Harbour Light Foundation",
        alt="A cliff edge with a fenced footpath above a rocky cove",
    ),
    DemoRelease(
        slug="keyworker-homes-saltings-quay",
        kind="Press release",
        title="Twenty-four keyworker homes to open on the old net loft site at Saltings Quay",
        summary="A community land trust backed by the Foundation will let the flats at a third "
        "below market rent to nurses, teachers, crew and care workers.",
        body="""Saltings Community Land Trust has signed the contract to build twenty-four homes
on the derelict net loft site at Saltings Quay, with the first tenants expected next spring.

Rents will be set at two thirds of the local market rate and held there for good by the trust.
Priority goes to people who work locally in health, education, care and on the water.

The homes are raised above the 1-in-200-year flood level, with living space on the upper
floors and bike and gear stores below.

> "Half our crew commute forty minutes because they cannot rent here. This changes that,"
> said lifeboat coxswain **Jory Penhale**.""",
        beats=("housing", "coastal-communities"),
        days_ago=10,
        scene="houses",
        caption="An architect's sketch of the new homes facing the quay.",
        credit="Saltings Community Land Trust",
        alt="Drawing of a terrace of colourful three-storey homes beside a harbour",
        contacts=(2,),
    ),
    DemoRelease(
        slug="update-winter-outreach-health-vans",
        kind="Update",
        title="Winter outreach: the health vans are back on the island route",
        summary="Two mobile clinics will visit eleven island and headland villages every "
        "fortnight until March, offering checks, vaccinations and prescriptions.",
        body="""From Monday the two Harbour Light health vans return to the winter island route.

Each visit offers blood pressure and diabetes checks, flu and COVID vaccinations, repeat
prescriptions and a private room for a video appointment with a GP.

The timetable is posted in every village shop and on our website, and the vans wait for the
last ferry when the crossing is late.""",
        beats=("health", "coastal-communities"),
        days_ago=13,
        scene="van",
        caption="The north route van at Gull Point car park.",
        credit="Ines Carrow / Harbour Light Foundation",
        alt="A white van with a blue stripe parked on a headland under a wide sky",
        contacts=(2,),
    ),
    DemoRelease(
        slug="saltmarsh-restoration-first-year",
        kind="Report",
        title="Saltmarsh restoration, year one: 38 hectares reconnected to the tide",
        summary="Breaching an old sea wall at Marrow Flats has let the tide back onto former "
        "grazing land, and the marsh is recovering faster than modelled.",
        body="""A year after the sea wall at Marrow Flats was opened, monitoring shows that
saltmarsh plants have colonised 38 hectares, well ahead of the 25 hectares modelled.

Sediment plates record 11 mm of new mud, and the marsh now absorbs wave energy that used to
strike the road embankment directly.

## What comes next

- Continued monitoring of carbon stored in the new sediment.
- Guided walks with the primary school each term.
- A second breach further upstream, subject to consent.""",
        beats=("climate",),
        days_ago=18,
        scene="marsh",
        caption="Channels forming across the restored marsh at Marrow Flats.",
        credit="Davey Lusk / Harbour Light Foundation",
        alt="Aerial view of winding tidal channels through green saltmarsh",
    ),
    DemoRelease(
        slug="fishers-mental-health-line",
        kind="Press release",
        title="A listening line for fishers, run by people who have worked at sea",
        summary="Deckhand Line opens tonight: a free, confidential phone and text service "
        "staffed by former crew, available from 4 pm to 8 am when boats are out.",
        body="""Deckhand Line, a free and confidential listening service for people who work in
fishing and their families, opens tonight.

The line is staffed by trained volunteers who have worked at sea, and it keeps fishing hours:
from 4 pm to 8 am, seven days a week, by phone or text.

Callers can talk about anything: money, family, isolation, or a bad trip. Volunteers can
connect them with debt advice, GP services and crisis teams when they want that.""",
        beats=("health", "fisheries"),
        days_ago=24,
        scene="lighthouse",
        caption="The light at Gull Point, which gives the line its logo.",
        credit="Harbour Light Foundation",
        alt="A lighthouse on a rocky point at dusk with its beam visible",
        contacts=(1, 2),
    ),
    DemoRelease(
        slug="update-flood-resilience-grants-round-two",
        kind="Update",
        title="Flood resilience grants: round two opens to households and small businesses",
        summary="Grants of up to £5,000 for flood doors, raised sockets and non-return valves, "
        "with priority for homes flooded since 2020.",
        body="""Round two of the household flood resilience grants is now open.

Households and businesses with fewer than ten staff in our eleven partner parishes can apply
for up to **£5,000** towards flood doors, raised electrics, non-return valves and pumps.

Applications close at the end of next month. A surveyor visits every applicant, free of
charge, whether or not a grant follows.""",
        beats=("climate", "housing"),
        days_ago=31,
        scene="rain",
        caption="Sandbags stacked by a front door on Chapel Street after January's surge.",
        credit="Morwenna Pike / Harbour Light Foundation",
        alt="A row of sandbags in front of a blue cottage door on a wet street",
    ),
    DemoRelease(
        slug="statement-harbour-dues-increase",
        kind="Statement",
        title="Statement on the proposed doubling of harbour dues for small boats",
        summary="A flat rise hits one-person boats hardest. We support a sliding scale by "
        "length and landing value.",
        body="""The harbour commissioners propose to double annual dues for boats under ten metres.

Dues pay for real work: dredging, lights and the ice plant. But a flat increase lands hardest on
one-person boats with the smallest margins, some of which our catch survey shows already earn
less than the minimum wage.

We support a sliding scale by length and by declared landing value, and a three-year phase-in,
and we have offered the commissioners our survey data to model it.""",
        beats=("fisheries", "policy"),
        days_ago=38,
        scene="harbour",
        caption="Harbour lights at Portmere.",
        credit="Davey Lusk / Harbour Light Foundation",
        alt="Harbour walls with navigation lights at night reflected in calm water",
        contacts=(1,),
    ),
    DemoRelease(
        slug="heat-and-damp-coastal-homes-study",
        kind="Report",
        title="Cold, damp and close to the sea: a study of 600 coastal homes",
        summary="One in four homes surveyed had visible mould; children in those homes missed "
        "twice as many school days through respiratory illness.",
        body="""With the university's public health department we surveyed 600 rented and owned
homes within two kilometres of the coast.

- **26%** had visible mould in at least one room.
- Homes with mould were three times as likely to have single glazing.
- Children living in them missed a median of 9 school days a year to respiratory illness,
  against 4 in dry homes.

We recommend that coastal councils prioritise retrofit funding for homes with children and
that landlords' damp repair duties apply to the exposed coast without exception.""",
        beats=("health", "housing"),
        days_ago=45,
        scene="windows",
        caption="Condensation on a single-glazed window in a seafront flat.",
        credit="Aisha Trevelyan / Harbour Light Foundation",
        alt="Close-up of water droplets on an old window with the sea blurred behind",
        contacts=(2,),
    ),
    DemoRelease(
        slug="young-skippers-apprenticeship",
        kind="Press release",
        title="Eight young skippers start a two-year apprenticeship at sea",
        summary="The first cohort of the Harbour Light apprenticeship pairs new entrants with "
        "experienced skippers, with wages paid from day one.",
        body="""Eight apprentices aged 17 to 24 today start the first Harbour Light skipper
apprenticeship.

Each is paired with an experienced owner-operator for two seasons, with a paid wage, safety
training ashore, and a mentor who has no stake in their boat.

By the end they will hold the qualifications to skipper a boat under ten metres, and the
Foundation's boat-share fund will help those who want their own.""",
        beats=("fisheries", "coastal-communities"),
        days_ago=53,
        scene="boats",
        caption="Apprentices and mentors on the quay on their first morning.",
        credit="Ines Carrow / Harbour Light Foundation",
        alt="Small boats in a harbour under a bright morning sky",
        contacts=(1,),
    ),
    DemoRelease(
        slug="update-community-energy-co-op",
        kind="Update",
        title="Portmere Community Energy co-op passes 400 members",
        summary="The rooftop solar co-op has now fitted panels to the school, the lifeboat "
        "station and the fish market, and cut their bills by a third.",
        body="""Portmere Community Energy has welcomed its 400th member.

Panels on the school, the lifeboat station and the fish market generated 186 MWh last year.
Surplus income funds a winter fuel grant for households in the parish.

The co-op's annual meeting is open to everyone, members or not.""",
        beats=("climate", "coastal-communities"),
        days_ago=60,
        scene="sun",
        caption="Solar panels on the fish market roof.",
        credit="Harbour Light Foundation",
        alt="Rows of solar panels on a roof against a blue sky with the sea beyond",
    ),
    DemoRelease(
        slug="coastal-adaptation-plan-embargoed",
        kind="Report",
        title="A coastal adaptation plan for forty harbours, costed to 2050",
        summary="Our plan sets out what each of forty small harbours needs to stay open to 2050, "
        "what it costs, and who should pay.",
        body="""**Embargoed.** The Harbour Light coastal adaptation plan sets out, harbour by
harbour, the works needed to keep forty small harbours working to 2050.

The plan costs the programme at £1.2 billion over 25 years, less than the cost of relocating
the businesses and homes that depend on the harbours.""",
        beats=("climate", "policy", "coastal-communities"),
        days_ago=-2,
        scene="tide",
        caption="The outer wall at Crannock at high water.",
        credit="Davey Lusk / Harbour Light Foundation",
        alt="Waves breaking against a stone harbour wall",
        state="embargoed",
    ),
    DemoRelease(
        slug="statement-ferry-timetable-cuts",
        kind="Statement",
        title="Statement on cuts to the winter island ferry timetable",
        summary="Fewer crossings will make it harder for islanders to reach hospital "
        "appointments. We ask the operator to keep the early boat.",
        body="""The proposed winter timetable removes the 07:10 crossing. For islanders with
hospital appointments on the mainland, that crossing is the only one that arrives in time.

We ask the operator to keep the early boat and to publish how it decided which crossings to cut.""",
        beats=("health", "policy"),
        days_ago=0,
        scene="lighthouse",
        caption="The island ferry leaving Gull Point.",
        credit="Harbour Light Foundation",
        alt="A small ferry crossing grey water towards a headland with a lighthouse",
        contacts=(2,),
        state="in_review",
    ),
]


# -- photos ------------------------------------------------------------------------------------

_PALETTES = {
    "tide": ((116, 164, 196), (222, 231, 236), (46, 92, 120)),
    "boats": ((246, 184, 120), (255, 226, 190), (40, 82, 110)),
    "cliff": ((150, 190, 220), (230, 240, 245), (92, 120, 70)),
    "houses": ((250, 214, 160), (255, 240, 220), (60, 110, 140)),
    "van": ((160, 200, 230), (240, 246, 250), (96, 140, 80)),
    "marsh": ((180, 210, 190), (236, 244, 230), (70, 120, 80)),
    "lighthouse": ((60, 70, 120), (240, 150, 110), (30, 40, 70)),
    "rain": ((120, 130, 150), (200, 206, 214), (60, 70, 90)),
    "harbour": ((20, 30, 60), (60, 80, 130), (10, 20, 40)),
    "windows": ((180, 196, 210), (236, 240, 244), (120, 140, 160)),
    "sun": ((90, 160, 230), (210, 235, 255), (40, 100, 150)),
}


def _lerp(a: tuple[int, ...], b: tuple[int, ...], t: float) -> tuple[int, ...]:
    return tuple(round(x + (y - x) * t) for x, y in zip(a, b, strict=True))


def draw_scene(scene: str, seed: int, size: tuple[int, int] = (1500, 1000)) -> bytes:
    """A simple illustrated coastal scene (sky gradient, sea, a subject), as PNG bytes."""
    rng = random.Random(seed)
    w, h = size
    image = Image.new("RGB", size)
    draw = ImageDraw.Draw(image)
    horizon = int(h * rng.uniform(0.52, 0.62))
    _draw_sky_and_sea(draw, rng, scene, size, horizon)
    if scene in ("cliff", "lighthouse", "van", "marsh", "sun"):
        land = (52, 74, 58) if scene not in ("harbour", "lighthouse") else (25, 30, 45)
        draw.polygon(
            [(0, horizon - 160), (w * 0.35, horizon - 120), (w * 0.45, horizon + 60), (0, h)],
            fill=land,
        )
    subject = _SUBJECTS.get(scene)
    if subject is not None:
        subject(_Canvas(draw, rng, w, h, horizon))
    image = image.filter(ImageFilter.GaussianBlur(radius=1.2))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


@dataclass(frozen=True)
class _Canvas:
    """What a scene's subject is drawn on, with the scene's random stream."""

    draw: ImageDraw.ImageDraw
    rng: random.Random
    w: int
    h: int
    horizon: int


def _draw_sky_and_sea(
    draw: ImageDraw.ImageDraw, rng: random.Random, scene: str, size: tuple[int, int], horizon: int
) -> None:
    sky_top, sky_bottom, sea = _PALETTES.get(scene, _PALETTES["tide"])
    w, h = size
    for y in range(horizon):
        draw.line([(0, y), (w, y)], fill=_lerp(sky_top, sky_bottom, y / horizon))
    sun_x, sun_y, sun_r = rng.randint(w // 5, 4 * w // 5), rng.randint(h // 8, horizon // 2), 70
    draw.ellipse([sun_x - sun_r, sun_y - sun_r, sun_x + sun_r, sun_y + sun_r], fill=(255, 243, 214))
    for y in range(horizon, h):
        t = (y - horizon) / (h - horizon)
        draw.line([(0, y), (w, y)], fill=_lerp(sea, tuple(c // 2 for c in sea), t))
    for i in range(26):  # wave lines
        y = horizon + 12 + i * (h - horizon) // 26
        amp, phase = 3 + i * 0.6, rng.uniform(0, math.tau)
        points = [(x, y + amp * math.sin(x / (40 + i * 3) + phase)) for x in range(0, w + 20, 20)]
        draw.line(points, fill=_lerp(sea, (255, 255, 255), 0.25), width=2)


def _draw_lighthouse(c: _Canvas) -> None:
    w = c.w
    x0 = int(w * 0.2)
    c.draw.polygon(
        [
            (x0 - 30, c.horizon - 120),
            (x0 + 30, c.horizon - 120),
            (x0 + 18, c.horizon - 420),
            (x0 - 18, c.horizon - 420),
        ],
        fill=(245, 245, 240),
    )
    c.draw.rectangle([x0 - 26, c.horizon - 460, x0 + 26, c.horizon - 420], fill=(250, 220, 120))
    c.draw.polygon(
        [(x0, c.horizon - 440), (w, c.horizon - 560), (w, c.horizon - 320)], fill=(255, 236, 170)
    )


def _draw_boats(c: _Canvas) -> None:
    w = c.w
    for i in range(c.rng.randint(3, 5)):
        bx = int(w * (0.15 + i * 0.18)) + c.rng.randint(-30, 30)
        by = c.horizon + 90 + c.rng.randint(0, 120)
        hull = c.rng.choice([(200, 60, 50), (40, 90, 150), (230, 200, 60), (240, 240, 240)])
        c.draw.polygon(
            [(bx - 110, by), (bx + 110, by), (bx + 80, by + 45), (bx - 80, by + 45)], fill=hull
        )
        c.draw.rectangle([bx - 30, by - 55, bx + 30, by], fill=(245, 245, 245))
        c.draw.line([(bx, by - 55), (bx, by - 170)], fill=(60, 60, 60), width=5)


def _draw_houses(c: _Canvas) -> None:
    colours = [(214, 98, 86), (240, 196, 90), (96, 160, 200), (150, 200, 150), (236, 236, 230)]
    for i in range(8):
        hx = 60 + i * 175
        top = c.horizon - c.rng.randint(220, 300)
        c.draw.rectangle([hx, top, hx + 165, c.horizon + 40], fill=colours[i % len(colours)])
        c.draw.polygon([(hx - 8, top), (hx + 82, top - 70), (hx + 173, top)], fill=(70, 70, 80))
        for wy in range(top + 30, c.horizon, 80):
            c.draw.rectangle([hx + 25, wy, hx + 65, wy + 45], fill=(250, 250, 235))
            c.draw.rectangle([hx + 100, wy, hx + 140, wy + 45], fill=(250, 250, 235))


def _draw_tide(c: _Canvas) -> None:
    w, h = c.w, c.h
    for i in range(6):
        px = int(w * (0.1 + i * 0.16))
        c.draw.rectangle([px, c.horizon - 140, px + 10, h - 80 - i * 20], fill=(70, 70, 70))
        c.draw.rectangle([px - 18, c.horizon - 170, px + 28, c.horizon - 140], fill=(30, 40, 50))


def _draw_van(c: _Canvas) -> None:
    w = c.w
    vx, vy = int(w * 0.55), c.horizon - 40
    c.draw.rounded_rectangle([vx, vy - 170, vx + 380, vy + 40], radius=26, fill=(250, 250, 250))
    c.draw.rectangle([vx, vy - 40, vx + 380, vy - 10], fill=(20, 110, 160))
    for cx in (vx + 80, vx + 300):
        c.draw.ellipse([cx - 38, vy + 10, cx + 38, vy + 86], fill=(30, 30, 30))


def _draw_rain(c: _Canvas) -> None:
    w, h = c.w, c.h
    for _ in range(500):
        rx, ry = c.rng.randint(0, w), c.rng.randint(0, h)
        c.draw.line([(rx, ry), (rx - 8, ry + 30)], fill=(220, 226, 235), width=2)


def _draw_windows(c: _Canvas) -> None:
    w, h = c.w, c.h
    c.draw.rectangle([0, 0, w, h], outline=(90, 70, 60), width=60)
    c.draw.rectangle([w // 2 - 20, 0, w // 2 + 20, h], fill=(90, 70, 60))
    for _ in range(900):
        dx, dy, r = c.rng.randint(60, w - 60), c.rng.randint(60, h - 60), c.rng.randint(2, 9)
        c.draw.ellipse([dx - r, dy - r, dx + r, dy + r], fill=(236, 242, 246))


def _draw_marsh(c: _Canvas) -> None:
    w = c.w
    for i in range(7):
        y = c.horizon + 40 + i * 60
        pts = [(x, y + 25 * math.sin(x / 120 + i)) for x in range(0, w + 40, 40)]
        c.draw.line(pts, fill=(96, 150, 96), width=30)


def _draw_solar_panels(c: _Canvas) -> None:
    for row in range(3):
        for col in range(6):
            x0, y0 = 520 + col * 150 - row * 30, c.horizon - 230 + row * 70
            c.draw.polygon(
                [(x0, y0), (x0 + 130, y0), (x0 + 110, y0 + 60), (x0 - 20, y0 + 60)],
                fill=(30, 60, 110),
                outline=(200, 220, 240),
            )


# The subject drawn over sky, sea and land, by scene (each may use the scene's random stream).
_SUBJECTS: dict[str, Callable[[_Canvas], None]] = {
    "lighthouse": _draw_lighthouse,
    "boats": _draw_boats,
    "harbour": _draw_boats,
    "houses": _draw_houses,
    "tide": _draw_tide,
    "van": _draw_van,
    "rain": _draw_rain,
    "windows": _draw_windows,
    "marsh": _draw_marsh,
    "sun": _draw_solar_panels,
}


# -- seeding -----------------------------------------------------------------------------------


def ensure_demo_beats(session: Session) -> dict[str, Beat]:
    """The demo beats, by slug; the audience seeder creates the same slugs, so look first."""
    beats: dict[str, Beat] = {}
    for slug, name in DEMO_BEATS:
        beat = session.scalar(select(Beat).where(Beat.slug == slug))
        if beat is None:
            beat = Beat(slug=slug, name=name, description="", is_public=True)
            session.add(beat)
            session.flush()
        beats[slug] = beat
    return beats


def seed_releases(session: Session, settings: Settings) -> list[str]:
    """Kinds, press contacts, beats and a dozen demo releases with generated photos."""
    kinds = {k.name: k for k in services.ensure_default_kinds(session)}
    beats = ensure_demo_beats(session)
    contacts: list[PressContact] = []
    for name, title, email, phone in DEMO_CONTACTS:
        contact = session.scalar(select(PressContact).where(PressContact.email == email))
        if contact is None:
            contact = services.save_contact(
                session, name=name, title=title, email=email, phone=phone
            )
        contacts.append(contact)
    now = utcnow()
    created = 0
    for index, item in enumerate(DEMO_RELEASES):
        if session.scalar(select(Release.id).where(Release.slug == item.slug)) is not None:
            continue
        created += 1
        _seed_one(session, settings, item, index, kinds, beats, contacts, now)
    if not created:
        return []
    return [f"releases: {created} demo releases with photos ({len(DEMO_RELEASES)} in all)"]


def _seed_one(
    session: Session,
    settings: Settings,
    item: DemoRelease,
    index: int,
    kinds: dict[str, ReleaseKind],
    beats: dict[str, Beat],
    contacts: list[PressContact],
    now: dt.datetime,
) -> None:
    at = now - dt.timedelta(days=item.days_ago) if item.days_ago > 0 else now
    release = services.create_release(
        session,
        author=None,
        data=services.ReleaseInput(
            kind_id=kinds[item.kind].id,
            title=item.title,
            summary=item.summary,
            body_markdown=item.body,
            beat_ids=[beats[b].id for b in item.beats],
            contact_ids=[contacts[i].id for i in item.contacts],
            photo_caption=item.caption,
            photo_credit=item.credit,
            photo_alt=item.alt,
        ),
        now=at - dt.timedelta(hours=3),
    )
    release.slug = item.slug
    media.set_photo(
        session, release, io.BytesIO(draw_scene(item.scene, index)), storage_for(settings)
    )
    if item.state != "draft":
        services.transition(session, release, ReleaseStatus.IN_REVIEW, by=None, now=at)
    if item.state in ("published", "embargoed"):
        if item.state == "embargoed":
            release.embargo_until = now + dt.timedelta(days=-item.days_ago)
        services.transition(
            session, release, ReleaseStatus.APPROVED, by=None, comment="Demo content", now=at
        )
    release.updated_at = at  # the demo's history, not the moment it was seeded
    session.flush()
