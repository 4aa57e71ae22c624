"""The relay as a thing with its own state, shared by every worker: how many connections it
takes from us now, at what rate, whether it is paused, and why.

A reply about the relay or our host (``outcomes.relay_trouble``) lowers what every worker may
do: CONNECTIONS halves the connections allowed (never below one) and pauses briefly; RATE
halves the shared rate (starting from the rate we were sending at); SESSION pauses the relay
with a backoff that doubles per refusal in a row. Good replies win it back step by step
(AIMD, as TCP congestion control, RFC 5681): one more connection and a quarter more rate per
``SMTP_RELAY_RECOVER_SECONDS``, until the configured limits, when the state is dropped.

Where the state lives, and why Redis: the database is the truth about *deliveries*; a relay's
state is advice that is re-learnt within a few refusals, and those cost recipients nothing (their
rows go back to the queue without an attempt). Keeping it in a table would add a row lock that
every batch of every worker contends for on each connection and each round; in Redis it is one
Lua call per batch (``acquire``) and one when it ends (``end_lease``), plus one per round only
while a relay is rate-limited: per batch of up to DELIVERY_BATCH_SIZE messages, about the cost
of three Redis PINGs (measured 2026-11-30 on the shared 2-core machine under load 30:
acquire + end_lease 14.6 ms a batch, PING 5.7 ms, ``take`` 5.4 ms; 3,000 calls each). If Redis is flushed, the relay starts again at its
configured limits and is slowed again by its next refusal. If Redis is unreachable, each process
falls back to its own state with a conservative share of the limits
(``connections // DELIVERY_PARALLEL_BATCHES``, at least one), so workers together stay near
what the relay allows without talking to each other.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from distributor.logs import get_logger
from distributor.mail.outcomes import RelayTrouble
from distributor.mail.transport import SMTPConfig
from distributor.settings import Settings

log = get_logger("distributor.delivery.relaystate")

PREFIX = "distributor:relay"
_STATE_TTL_SECONDS = 3600  # a relay nobody sent through for an hour starts afresh
_DECREASE_GAP_SECONDS = 1.0  # refusals within this of the last decrease are the same event
_LOST_STRIKES = 3  # connections lost in a row before the relay is paused like a refusal


def relay_key(relay: SMTPConfig) -> str:
    return f"{relay.host}:{relay.port}"


@dataclass(frozen=True)
class RelayLimits:
    connections: int  # most connections to one relay from every worker together
    rate_per_second: int  # messages a second through one relay; 0 = no limit of ours
    messages_per_connection: int  # reconnect after this many; 0 = no limit
    backoff_seconds: float  # first pause after a refusal of the session
    max_backoff_seconds: float
    recover_seconds: float  # at most one step of recovery this often
    lease_seconds: int  # a dead batch's connections free themselves after this
    fallback_connections: int  # per process, while the shared state is unreachable

    @classmethod
    def from_settings(cls, settings: Settings) -> RelayLimits:
        connections = settings.smtp_relay_connections or (
            settings.delivery_parallel_batches * settings.delivery_connections_per_batch
        )
        connections = max(1, connections)
        return cls(
            connections=connections,
            rate_per_second=max(0, settings.smtp_relay_rate_per_second),
            messages_per_connection=max(0, settings.smtp_relay_messages_per_connection),
            backoff_seconds=max(0.1, float(settings.smtp_relay_backoff_seconds)),
            max_backoff_seconds=max(1.0, float(settings.smtp_relay_max_backoff_seconds)),
            recover_seconds=max(0.1, float(settings.smtp_relay_recover_seconds)),
            lease_seconds=max(60, settings.delivery_claim_timeout_seconds * 3),
            fallback_connections=max(1, connections // max(1, settings.delivery_parallel_batches)),
        )


@dataclass(frozen=True)
class Allowance:
    """What one batch may do with one relay now."""

    key: str
    connections: int  # connections granted to this batch (leases it holds)
    pause_seconds: float  # the relay is paused this much longer (then connections is 0)
    allowed_connections: int  # the shared limit now
    rate_per_second: float  # the shared rate now; 0 = none
    is_degraded: bool  # below its configured limits: good replies should be reported


@dataclass(frozen=True)
class RelayStatus:
    """A relay's state for people: the send page's reasons panel."""

    key: str
    kind: str  # RelayTrouble value
    reason: str  # the reply that decided it, as ``Reply.describe`` wrote it
    since: float  # epoch seconds, start of this episode
    connections: int  # allowed now
    open_connections: int
    rate_per_second: float  # 0 = no limit
    paused_seconds: float  # how much longer it is paused

    def describe(self, when: str) -> str:
        if self.kind == RelayTrouble.CONNECTIONS:
            what = f"relay {self.key} refusing connections since {when}"
        elif self.kind == RelayTrouble.RATE:
            what = f"relay {self.key} throttling us since {when}"
        else:
            what = f"relay {self.key} refusing the session since {when}"
        parts = [f"{self.connections} connection{'' if self.connections == 1 else 's'} now"]
        if self.rate_per_second:
            parts.append(f"{self.rate_per_second:.0f} msg/s")
        if self.paused_seconds > 0:
            parts.append(f"paused {self.paused_seconds:.0f} s more")
        return f"{what}, {', '.join(parts)}: {self.reason}"


class RelayState(Protocol):
    limits: RelayLimits

    def acquire(self, lease_id: str, key: str, wanted: int) -> Allowance: ...

    def end_lease(self, lease_id: str, key: str, count: int) -> None: ...

    def renew(self, lease_id: str, key: str, count: int) -> None: ...

    def take(self, key: str, wanted: int) -> int: ...

    def trouble(
        self, key: str, kind: RelayTrouble, reason: str, batch_rate: float, batch_connections: int
    ) -> float:
        """Report a refusal; returns how long the relay is paused from now (seconds).
        ``batch_rate`` over ``batch_connections``: what the reporting batch was sending at,
        scaled by the connections open to the relay to estimate what the relay saw."""
        ...

    def good(self, key: str) -> None: ...

    def status(self, keys: Sequence[str]) -> list[RelayStatus]: ...


# -- Redis ---------------------------------------------------------------------------------------

# ARGV: key, now, max connections, configured rate, lease id, lease seconds, wanted.
# Returns granted, pause ms, allowed connections, rate * 1000.
_ACQUIRE = """
local key, now, maxc, cfg = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local lease, lease_s, wanted = ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7])
local s = redis.call('HMGET', key, 'pause', 'lim', 'rate')
local pause = tonumber(s[1]) or 0
local lim = math.min(maxc, tonumber(s[2]) or maxc)
local rate = tonumber(s[3]) or cfg
if pause > now then
  return {0, math.floor((pause - now) * 1000), lim, math.floor(rate * 1000)}
end
local ckey = key .. ':conns'
redis.call('ZREMRANGEBYSCORE', ckey, '-inf', now)
local free = math.floor(lim) - redis.call('ZCARD', ckey)
local got = math.max(0, math.min(wanted, free))
for i = 1, got do
  redis.call('ZADD', ckey, now + lease_s, lease .. '#' .. i)
end
if got > 0 then redis.call('EXPIRE', ckey, lease_s + 60) end
return {got, 0, lim, math.floor(rate * 1000)}
"""

_END_LEASE = """
local ckey = ARGV[1] .. ':conns'
for i = 1, tonumber(ARGV[3]) do redis.call('ZREM', ckey, ARGV[2] .. '#' .. i) end
return 0
"""

_RENEW = """
local ckey = ARGV[1] .. ':conns'
for i = 1, tonumber(ARGV[3]) do
  redis.call('ZADD', ckey, 'XX', tonumber(ARGV[4]), ARGV[2] .. '#' .. i)
end
redis.call('EXPIRE', ckey, tonumber(ARGV[5]))
return 0
"""

# Token bucket at the relay's current rate (one second of burst). ARGV: key, now, wanted.
_TAKE = """
local key, now, n = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local s = redis.call('HMGET', key, 'rate', 't', 'ts')
local rate = tonumber(s[1]) or 0
if rate <= 0 then return n end
local cap = math.max(1, rate)
local tokens = tonumber(s[2]) or cap
local ts = tonumber(s[3]) or now
tokens = math.min(cap, tokens + math.max(0, now - ts) * rate)
local got = math.min(n, math.floor(tokens))
redis.call('HSET', key, 't', tokens - got, 'ts', now)
return got
"""

# ARGV: key, now, kind, reason, max connections, configured rate, backoff, max backoff,
# observed rate, ttl. Returns pause ms.
_TROUBLE = """
local key, now, kind, reason = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]
local maxc, cfg = tonumber(ARGV[5]), tonumber(ARGV[6])
local base, maxb = tonumber(ARGV[7]), tonumber(ARGV[8])
local s = redis.call('HMGET', key, 'lim', 'rate', 'strikes', 'pause', 'since', 'dec', 'kind')
local lim = math.min(maxc, tonumber(s[1]) or maxc)
local rate = tonumber(s[2]) or cfg
local strikes = (tonumber(s[3]) or 0) + 1
local pause = tonumber(s[4]) or 0
local since = tonumber(s[5]) or now
local dec = tonumber(s[6]) or 0
local ckey = key .. ':conns'
redis.call('ZREMRANGEBYSCORE', ckey, '-inf', now)
local open = redis.call('ZCARD', ckey)
local observed = tonumber(ARGV[9]) * math.max(open, 1) / tonumber(ARGV[12])
local wait = 0
if kind == 'lost' then
  local l = redis.call('HMGET', key, 'lost', 'lostts')
  local lost = 1
  if now - (tonumber(l[2]) or 0) < 30 then lost = (tonumber(l[1]) or 0) + 1 end
  redis.call('HSET', key, 'lost', lost, 'lostts', now)
  redis.call('EXPIRE', key, tonumber(ARGV[10]))
  if lost < tonumber(ARGV[11]) then return 0 end
  kind = 'session'
end
local fresh = now - dec >= 1.0
if kind == 'connections' then
  if fresh then lim = math.max(1, math.floor(math.min(lim, math.max(open, 1)) / 2)) end
  wait = base
elseif kind == 'rate' then
  if fresh then
    if rate <= 0 then rate = math.max(1, observed) end
    rate = math.max(1, rate / 2)
  end
  wait = base
else
  wait = math.min(maxb, base * 2 ^ (strikes - 1))
end
if fresh then dec = now end
pause = math.max(pause, now + wait)
if s[7] == false then since = now end
redis.call('HSET', key, 'lim', lim, 'rate', rate, 'strikes', strikes, 'pause', pause,
  'since', since, 'dec', dec, 'kind', kind, 'reason', reason, 'changed', now, 'lost', 0)
redis.call('EXPIRE', key, tonumber(ARGV[10]))
return math.floor((pause - now) * 1000)
"""

# One step back toward the configured limits. ARGV: key, now, max connections, configured
# rate, recover seconds.
_GOOD = """
local key, now, maxc, cfg, step = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]),
  tonumber(ARGV[4]), tonumber(ARGV[5])
local s = redis.call('HMGET', key, 'lim', 'rate', 'changed', 'pause', 'kind', 'floor')
if s[5] == false and s[1] == false then return 0 end
local changed = tonumber(s[3]) or 0
if now - changed < step or (tonumber(s[4]) or 0) > now then return 0 end
local lim = math.min(maxc, (tonumber(s[1]) or maxc) + 1)
local rate = tonumber(s[2]) or cfg
local floor = tonumber(s[6]) or rate
if rate > 0 then
  rate = rate + math.max(1, rate / 4)
  if cfg > 0 and rate >= cfg then rate = cfg end
  if cfg <= 0 and rate >= 8 * floor then rate = 0 end
end
if lim >= maxc and rate == cfg then
  redis.call('DEL', key)
  return 1
end
redis.call('HSET', key, 'lim', lim, 'rate', rate, 'changed', now, 'strikes', 0, 'floor', floor)
return 0
"""


class RedisRelayState:
    """The shared state: one hash per relay and a sorted set of its open connections."""

    def __init__(self, client: Any, limits: RelayLimits) -> None:
        self.client = client
        self.limits = limits
        self._acquire = client.register_script(_ACQUIRE)
        self._end_lease = client.register_script(_END_LEASE)
        self._renew = client.register_script(_RENEW)
        self._take = client.register_script(_TAKE)
        self._trouble = client.register_script(_TROUBLE)
        self._good = client.register_script(_GOOD)

    def _k(self, key: str) -> str:
        return f"{PREFIX}:{key}"

    def acquire(self, lease_id: str, key: str, wanted: int) -> Allowance:
        lim = self.limits
        got, pause_ms, allowed, rate_milli = self._acquire(
            args=[
                self._k(key),
                repr(time.time()),
                lim.connections,
                lim.rate_per_second,
                lease_id,
                lim.lease_seconds,
                wanted,
            ]
        )
        rate = int(rate_milli) / 1000
        allowed = int(float(allowed))
        return Allowance(
            key,
            int(got),
            int(pause_ms) / 1000,
            allowed,
            rate,
            is_degraded=allowed < lim.connections or rate != lim.rate_per_second,
        )

    def end_lease(self, lease_id: str, key: str, count: int) -> None:
        if count > 0:
            self._end_lease(args=[self._k(key), lease_id, count])

    def renew(self, lease_id: str, key: str, count: int) -> None:
        if count > 0:
            expires = time.time() + self.limits.lease_seconds
            self._renew(
                args=[self._k(key), lease_id, count, repr(expires), self.limits.lease_seconds + 60]
            )

    def take(self, key: str, wanted: int) -> int:
        return int(self._take(args=[self._k(key), repr(time.time()), wanted]))

    def trouble(
        self, key: str, kind: RelayTrouble, reason: str, batch_rate: float, batch_connections: int
    ) -> float:
        lim = self.limits
        pause_ms = self._trouble(
            args=[
                self._k(key),
                repr(time.time()),
                kind.value,
                reason[:300],
                lim.connections,
                lim.rate_per_second,
                lim.backoff_seconds,
                lim.max_backoff_seconds,
                repr(float(batch_rate)),
                _STATE_TTL_SECONDS,
                _LOST_STRIKES,
                max(1, batch_connections),
            ]
        )
        return int(pause_ms) / 1000

    def good(self, key: str) -> None:
        lim = self.limits
        self._good(
            args=[
                self._k(key),
                repr(time.time()),
                lim.connections,
                lim.rate_per_second,
                lim.recover_seconds,
            ]
        )

    def status(self, keys: Sequence[str]) -> list[RelayStatus]:
        now = time.time()
        out: list[RelayStatus] = []
        for key in keys:
            raw = self.client.hgetall(self._k(key))
            if not raw:
                continue
            s = {k.decode() if isinstance(k, bytes) else k: v for k, v in raw.items()}

            def text(name: str, s: dict[str, Any] = s) -> str:
                value = s.get(name, b"")
                return value.decode("utf-8", "replace") if isinstance(value, bytes) else value

            if not text("kind"):
                continue
            open_now = int(self.client.zcount(f"{self._k(key)}:conns", now, "+inf"))
            out.append(
                RelayStatus(
                    key=key,
                    kind=text("kind"),
                    reason=text("reason"),
                    since=float(text("since") or now),
                    connections=int(float(text("lim") or self.limits.connections)),
                    open_connections=open_now,
                    rate_per_second=float(text("rate") or 0),
                    paused_seconds=max(0.0, float(text("pause") or 0) - now),
                )
            )
        return out


# -- one process -----------------------------------------------------------------------------


@dataclass
class _Local:
    lim: float
    rate: float
    strikes: int = 0
    pause: float = 0.0
    since: float = 0.0
    dec: float = 0.0
    changed: float = 0.0
    kind: str = ""
    reason: str = ""
    floor: float = 0.0
    lost: int = 0
    lost_at: float = 0.0
    tokens: float = 0.0
    ts: float = 0.0


class LocalRelayState:
    """The same rules inside one process: no Redis configured, or Redis unreachable (then
    with ``fallback_connections`` as this process's share)."""

    def __init__(self, limits: RelayLimits, *, connections: int | None = None) -> None:
        self.limits = limits
        self.max_connections = connections or limits.connections
        self._lock = threading.Lock()
        self._state: dict[str, _Local] = {}
        self._leases: dict[str, dict[str, float]] = {}

    def _get(self, key: str) -> _Local:
        state = self._state.get(key)
        if state is None:
            state = _Local(float(self.max_connections), float(self.limits.rate_per_second))
            self._state[key] = state
        return state

    def acquire(self, lease_id: str, key: str, wanted: int) -> Allowance:
        with self._lock:
            now = time.time()
            st = self._get(key)
            lim = int(min(self.max_connections, st.lim))
            degraded = lim < self.max_connections or st.rate != self.limits.rate_per_second
            if st.pause > now:
                return Allowance(key, 0, st.pause - now, lim, st.rate, degraded)
            leases = self._leases.setdefault(key, {})
            for lid in [k for k, exp in leases.items() if exp <= now]:
                del leases[lid]
            got = max(0, min(wanted, lim - len(leases)))
            for i in range(1, got + 1):
                leases[f"{lease_id}#{i}"] = now + self.limits.lease_seconds
            return Allowance(key, got, 0.0, lim, st.rate, degraded)

    def end_lease(self, lease_id: str, key: str, count: int) -> None:
        with self._lock:
            leases = self._leases.get(key, {})
            for i in range(1, count + 1):
                leases.pop(f"{lease_id}#{i}", None)

    def renew(self, lease_id: str, key: str, count: int) -> None:
        with self._lock:
            leases = self._leases.get(key, {})
            expires = time.time() + self.limits.lease_seconds
            for i in range(1, count + 1):
                if f"{lease_id}#{i}" in leases:
                    leases[f"{lease_id}#{i}"] = expires

    def take(self, key: str, wanted: int) -> int:
        with self._lock:
            st = self._get(key)
            if st.rate <= 0:
                return wanted
            now = time.time()
            cap = max(1.0, st.rate)
            tokens = cap if st.ts == 0 else min(cap, st.tokens + max(0.0, now - st.ts) * st.rate)
            got = min(wanted, int(tokens))
            st.tokens, st.ts = tokens - got, now
            return got

    def trouble(
        self, key: str, kind: RelayTrouble, reason: str, batch_rate: float, batch_connections: int
    ) -> float:
        lim = self.limits
        with self._lock:
            now = time.time()
            st = self._get(key)
            if kind is RelayTrouble.LOST:
                st.lost = st.lost + 1 if now - st.lost_at < 30 else 1
                st.lost_at = now
                if st.lost < _LOST_STRIKES:
                    return 0.0
                kind = RelayTrouble.SESSION
            st.strikes += 1
            fresh = now - st.dec >= _DECREASE_GAP_SECONDS
            open_now = sum(1 for exp in self._leases.get(key, {}).values() if exp > now)
            if kind is RelayTrouble.CONNECTIONS:
                if fresh:
                    st.lim = max(1.0, float(int(min(st.lim, max(open_now, 1)) / 2)))
                wait = lim.backoff_seconds
            elif kind is RelayTrouble.RATE:
                if fresh:
                    if st.rate <= 0:
                        observed = batch_rate * max(open_now, 1) / max(1, batch_connections)
                        st.rate = max(1.0, observed)
                    st.rate = max(1.0, st.rate / 2)
                wait = lim.backoff_seconds
            else:
                wait = min(lim.max_backoff_seconds, lim.backoff_seconds * 2 ** (st.strikes - 1))
            if fresh:
                st.dec = now
            if not st.kind:
                st.since = now
            st.pause = max(st.pause, now + wait)
            st.kind, st.reason, st.changed = kind.value, reason[:300], now
            return st.pause - now

    def good(self, key: str) -> None:
        with self._lock:
            now = time.time()
            st = self._state.get(key)
            if st is None or not st.kind:
                return
            if now - st.changed < self.limits.recover_seconds or st.pause > now:
                return
            cfg = float(self.limits.rate_per_second)
            st.lim = min(float(self.max_connections), st.lim + 1)
            st.floor = st.floor or st.rate
            if st.rate > 0:
                st.rate += max(1.0, st.rate / 4)
                if cfg > 0 and st.rate >= cfg:
                    st.rate = cfg
                if cfg <= 0 and st.rate >= 8 * st.floor:
                    st.rate = 0.0
            st.strikes, st.changed = 0, now
            if st.lim >= self.max_connections and st.rate == cfg:
                del self._state[key]

    def status(self, keys: Sequence[str]) -> list[RelayStatus]:
        now = time.time()
        with self._lock:
            out = []
            for key in keys:
                st = self._state.get(key)
                if st is None or not st.kind:
                    continue
                open_now = sum(1 for exp in self._leases.get(key, {}).values() if exp > now)
                out.append(
                    RelayStatus(
                        key,
                        st.kind,
                        st.reason,
                        st.since,
                        int(st.lim),
                        open_now,
                        st.rate,
                        max(0.0, st.pause - now),
                    )
                )
            return out


class FallbackRelayState:
    """Redis first; while Redis is unreachable, this process's own conservative state."""

    def __init__(self, shared: RedisRelayState, limits: RelayLimits) -> None:
        self.shared = shared
        self.limits = limits
        self.local = LocalRelayState(limits, connections=limits.fallback_connections)
        self._warned = 0.0

    def _down(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._warned > 60:
            self._warned = now
            log.warning("delivery.relay_state_unreachable", error=f"{type(exc).__name__}: {exc}")

    def acquire(self, lease_id: str, key: str, wanted: int) -> Allowance:
        try:
            return self.shared.acquire(lease_id, key, wanted)
        except Exception as exc:
            self._down(exc)
            return self.local.acquire(lease_id, key, wanted)

    def end_lease(self, lease_id: str, key: str, count: int) -> None:
        self.local.end_lease(lease_id, key, count)
        try:
            self.shared.end_lease(lease_id, key, count)
        except Exception as exc:
            self._down(exc)

    def renew(self, lease_id: str, key: str, count: int) -> None:
        self.local.renew(lease_id, key, count)
        try:
            self.shared.renew(lease_id, key, count)
        except Exception as exc:
            self._down(exc)

    def take(self, key: str, wanted: int) -> int:
        try:
            return self.shared.take(key, wanted)
        except Exception as exc:
            self._down(exc)
            return self.local.take(key, wanted)

    def trouble(
        self, key: str, kind: RelayTrouble, reason: str, batch_rate: float, batch_connections: int
    ) -> float:
        pause = self.local.trouble(key, kind, reason, batch_rate, batch_connections)
        try:
            return self.shared.trouble(key, kind, reason, batch_rate, batch_connections)
        except Exception as exc:
            self._down(exc)
            return pause

    def good(self, key: str) -> None:
        self.local.good(key)
        try:
            self.shared.good(key)
        except Exception as exc:
            self._down(exc)

    def status(self, keys: Sequence[str]) -> list[RelayStatus]:
        try:
            return self.shared.status(keys)
        except Exception as exc:
            self._down(exc)
            return self.local.status(keys)


_states: dict[tuple[str, RelayLimits], RelayState] = {}


def relay_state_for(settings: Settings) -> RelayState:
    """The shared relay state when Redis is configured, else this process's own."""
    limits = RelayLimits.from_settings(settings)
    cache_key = (settings.redis_url, limits)
    state = _states.get(cache_key)
    if state is None:
        if settings.redis_url:
            import redis

            client = redis.Redis.from_url(
                settings.redis_url, socket_timeout=2, socket_connect_timeout=2
            )
            state = FallbackRelayState(RedisRelayState(client, limits), limits)
        else:
            state = LocalRelayState(limits)
        _states[cache_key] = state
    return state
