"""Where tracking events wait between the HTTP answer and the database.

With ``REDIS_URL`` set, a request appends its event to a Redis list (one RPUSH, well under a
millisecond) and answers. The flush task moves a batch atomically to a processing list (a Lua
script: read, trim and append in one step), writes it to the database in one transaction, and
only then deletes the processing list. A flush that dies midway leaves its batch in the
processing list; the next flush writes it first, and the unique ``event_uid`` makes the replay
insert nothing twice. So an acknowledged event survives a crash of the web worker (it is in
Redis already) and of the flusher.

Without Redis (SQLite development mode) the request writes its event to the database itself
(write-through): nothing waits in memory, so a crash cannot lose an acknowledged event.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import DataError, IntegrityError

from distributor.logs import get_logger

log = get_logger("distributor.tracking.buffer")

# What the database says about the data itself (bad value, broken reference), as opposed to
# an outage: only these are worth splitting a batch over.
REFUSED_DATA = (IntegrityError, DataError)

QUEUE_KEY = "distributor:tracking:events"
PROCESSING_KEY = "distributor:tracking:processing"
LOCK_KEY = "distributor:tracking:flush-lock"
# Events the database refused on their own (a data error, not an outage): kept for a person to
# look at, newest DEAD_LETTER_KEEP of them, instead of blocking every event behind them.
DEAD_LETTER_KEY = "distributor:tracking:refused"
DEAD_LETTER_KEEP = 10_000

# Move up to ARGV[1] items from the queue to the processing list, atomically.
_CLAIM_SCRIPT = """
local items = redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
if #items > 0 then
  redis.call('LTRIM', KEYS[1], #items, -1)
  for i = 1, #items, 1000 do
    redis.call('RPUSH', KEYS[2], unpack(items, i, math.min(i + 999, #items)))
  end
end
return items
"""


@dataclass(frozen=True)
class RawEvent:
    """What the endpoint saw, before anyone looked up the token."""

    uid: str
    kind: str  # "open" | "click"
    token: str
    link_id: int | None
    occurred_at: float  # POSIX seconds, UTC
    method: str
    user_agent: str

    @classmethod
    def new(
        cls, *, kind: str, token: str, link_id: int | None, method: str, user_agent: str
    ) -> RawEvent:
        return cls(
            uid=uuid.uuid4().hex,
            kind=kind,
            token=token,
            link_id=link_id,
            occurred_at=dt.datetime.now(dt.UTC).timestamp(),
            method=method,
            user_agent=user_agent[:300],
        )

    @property
    def occurred(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.occurred_at, dt.UTC)

    def dumps(self) -> str:
        # Built by hand: dataclasses.asdict deep-copies, which shows at thousands per second.
        return json.dumps(
            {
                "uid": self.uid,
                "kind": self.kind,
                "token": self.token,
                "link_id": self.link_id,
                "occurred_at": self.occurred_at,
                "method": self.method,
                "user_agent": self.user_agent,
            },
            separators=(",", ":"),
        )

    @classmethod
    def loads(cls, raw: str | bytes) -> RawEvent | None:
        try:
            data = json.loads(raw)
            return cls(
                uid=str(data["uid"])[:32],
                kind=str(data["kind"]),
                token=str(data["token"]),
                link_id=int(data["link_id"]) if data.get("link_id") is not None else None,
                occurred_at=float(data["occurred_at"]),
                method=str(data["method"])[:8],
                user_agent=str(data["user_agent"])[:300],
            )
        except (ValueError, KeyError, TypeError):
            return None  # a corrupt entry must not block the queue behind it


class RedisEventBuffer:
    """A durable FIFO of raw events in Redis with an at-least-once, replay-safe drain."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self._claim = client.register_script(_CLAIM_SCRIPT)

    @classmethod
    def from_url(cls, url: str) -> RedisEventBuffer:
        import redis

        return cls(redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2))

    def push(self, event: RawEvent) -> None:
        self.client.rpush(QUEUE_KEY, event.dumps())

    def push_many(self, events: list[RawEvent]) -> None:
        """Append several events in one RPUSH: all of them are kept, or (on error) none."""
        self.client.rpush(QUEUE_KEY, *(event.dumps() for event in events))

    def pending(self) -> int:
        return int(self.client.llen(QUEUE_KEY)) + int(self.client.llen(PROCESSING_KEY))

    def drain(
        self,
        write: Callable[[list[RawEvent]], None],
        *,
        batch_size: int = 2000,
        max_batches: int = 50,
        lock_seconds: int = 120,
    ) -> int:
        """Hand batches to ``write`` (which must commit) until the queue is empty; count them."""
        lock_id = uuid.uuid4().hex
        if not self.client.set(LOCK_KEY, lock_id, nx=True, ex=lock_seconds):
            return 0  # another flusher is at work; the next beat tick tries again
        total = 0
        try:
            # Left over from a flush that died after claiming: write it before anything new.
            leftover = self.client.lrange(PROCESSING_KEY, 0, -1)
            if leftover:
                total += self._write(write, leftover)
            for _ in range(max_batches):
                items = self._claim(keys=[QUEUE_KEY, PROCESSING_KEY], args=[batch_size])
                if not items:
                    break
                total += self._write(write, items)
        finally:
            if self.client.get(LOCK_KEY) == lock_id.encode():
                self.client.delete(LOCK_KEY)
        return total

    def _write(self, write: Callable[[list[RawEvent]], None], items: list[bytes]) -> int:
        events = [e for e in (RawEvent.loads(item) for item in items) if e is not None]
        try:
            write(events)  # commits; if it raises, the batch stays in the processing list
        except REFUSED_DATA:
            # One bad event must not hold the whole buffer back: write the batch in halves
            # until the events the database refuses are alone, and set those aside. An outage
            # (any other error) leaves the batch to be replayed by the next flush.
            self._write_apart(write, events)
        self.client.delete(PROCESSING_KEY)
        return len(events)

    def _write_apart(self, write: Callable[[list[RawEvent]], None], events: list[RawEvent]) -> None:
        if len(events) == 1:
            try:
                write(events)
            except REFUSED_DATA as exc:
                log.warning("tracking.event_refused", error=str(exc)[:300])
                self.client.rpush(DEAD_LETTER_KEY, events[0].dumps())
                self.client.ltrim(DEAD_LETTER_KEY, -DEAD_LETTER_KEEP, -1)
            return
        middle = len(events) // 2
        for half in (events[:middle], events[middle:]):
            try:
                write(half)
            except REFUSED_DATA:
                self._write_apart(write, half)

    def refused(self) -> list[RawEvent]:
        """Events set aside because the database refused them."""
        raw = self.client.lrange(DEAD_LETTER_KEY, 0, -1)
        return [e for e in (RawEvent.loads(item) for item in raw) if e is not None]
