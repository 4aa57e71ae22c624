"""Sending limits shared by every worker: a global rate, and per recipient domain a rate, a
concurrency cap and a back-off after the domain says "slow down" (421 or 4.7.x).

With ``REDIS_URL`` the state lives in Redis and one Lua call per batch asks for every domain of
the batch at once; without Redis an in-process limiter applies the same rules to one process.
Tokens are asked for per batch, not per message, so the limiter costs nothing per recipient.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from distributor.settings import Settings

PREFIX = "distributor:rl"


@dataclass(frozen=True)
class Limits:
    rate_per_second: int  # global; 0 = unlimited
    domain_rate_per_second: int  # 0 = unlimited
    domain_concurrency: int  # 0 = unlimited
    domain_backoff_seconds: int
    lease_seconds: int  # a batch's concurrency slot expires after this (dead worker)

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            rate_per_second=settings.delivery_rate_per_second,
            domain_rate_per_second=settings.delivery_domain_rate_per_second,
            domain_concurrency=settings.delivery_domain_concurrency,
            domain_backoff_seconds=settings.delivery_domain_backoff_seconds,
            # Batches renew their lease every round; a dead one's slot frees itself.
            lease_seconds=max(300, settings.delivery_claim_timeout_seconds),
        )


@dataclass(frozen=True)
class Grant:
    """How many messages the batch may send now to each domain; the rest waits."""

    granted: dict[str, int]
    backoff_seconds: dict[str, float] = field(default_factory=dict)  # domains slowed down


class RateLimiter(Protocol):
    def acquire(self, lease_id: str, wanted: Mapping[str, int]) -> Grant: ...

    def end_lease(self, lease_id: str, domains: list[str]) -> None: ...

    def back_off(self, domain: str) -> None: ...


# KEYS: none (cluster mode is not a goal). ARGV: prefix, now, global rate, domain rate,
# domain concurrency, lease id, lease seconds, then domain, count pairs.
# Returns granted, backoff-ms pairs in the same order.
_ACQUIRE = """
local prefix, now = ARGV[1], tonumber(ARGV[2])
local rate, drate, conc = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local lease, lease_s = ARGV[6], tonumber(ARGV[7])
local function refill(key, r)
  local state = redis.call('HMGET', key, 't', 'ts')
  local tokens = tonumber(state[1]) or r
  local ts = tonumber(state[2]) or now
  return math.min(r, tokens + math.max(0, now - ts) * r)
end
local function store(key, tokens)
  redis.call('HSET', key, 't', tokens, 'ts', now)
  redis.call('EXPIRE', key, 60)
end
-- The global bucket is read once and written once per call (a batch asks for a thousand
-- domains at a time); each domain's grant is then cut to what is left of it.
local global_key = prefix .. ':global'
local global = math.huge
if rate > 0 then global = refill(global_key, rate) end
local out = {}
for i = 8, #ARGV, 2 do
  local domain, want = ARGV[i], tonumber(ARGV[i + 1])
  local got, wait = 0, 0
  local pttl = redis.call('PTTL', prefix .. ':backoff:' .. domain)
  if pttl > 0 then
    wait = pttl
  else
    local ok = true
    local ckey = prefix .. ':conc:' .. domain
    if conc > 0 then
      redis.call('ZREMRANGEBYSCORE', ckey, '-inf', now)
      if redis.call('ZCARD', ckey) >= conc and redis.call('ZSCORE', ckey, lease) == false then
        ok = false
      end
    end
    if ok then
      got = want
      if drate > 0 then
        local dkey = prefix .. ':domain:' .. domain
        local tokens = refill(dkey, drate)
        got = math.min(want, math.floor(tokens))
        store(dkey, tokens - got)
      end
      if got > 0 then
        got = math.min(got, math.floor(global))
        global = global - got
      end
      if got > 0 and conc > 0 then
        redis.call('ZADD', ckey, now + lease_s, lease)
        redis.call('EXPIRE', ckey, lease_s + 60)
      end
    end
  end
  table.insert(out, got)
  table.insert(out, wait)
end
if rate > 0 then store(global_key, global) end
return out
"""


_END_LEASE = """
for i = 3, #ARGV do
  redis.call('ZREM', ARGV[1] .. ':conc:' .. ARGV[i], ARGV[2])
end
return 0
"""


class RedisRateLimiter:
    def __init__(self, client: Any, limits: Limits) -> None:
        self.client = client
        self.limits = limits
        self._acquire = client.register_script(_ACQUIRE)
        self._end_lease = client.register_script(_END_LEASE)

    def acquire(self, lease_id: str, wanted: Mapping[str, int]) -> Grant:
        args: list[Any] = [
            PREFIX,
            repr(time.time()),
            self.limits.rate_per_second,
            self.limits.domain_rate_per_second,
            self.limits.domain_concurrency,
            lease_id,
            self.limits.lease_seconds,
        ]
        domains = list(wanted)
        for domain in domains:
            args += [domain, wanted[domain]]
        result = self._acquire(args=args)
        granted: dict[str, int] = {}
        backoff: dict[str, float] = {}
        for i, domain in enumerate(domains):
            granted[domain] = int(result[2 * i])
            wait_ms = int(result[2 * i + 1])
            if wait_ms > 0:
                backoff[domain] = wait_ms / 1000
        return Grant(granted, backoff)

    def end_lease(self, lease_id: str, domains: list[str]) -> None:
        if not domains or self.limits.domain_concurrency <= 0:
            return
        self._end_lease(args=[PREFIX, lease_id, *domains])

    def back_off(self, domain: str) -> None:
        self.client.set(
            f"{PREFIX}:backoff:{domain}", "1", px=self.limits.domain_backoff_seconds * 1000
        )


class _Bucket:
    __slots__ = ("tokens", "ts")

    def __init__(self, tokens: float, ts: float) -> None:
        self.tokens = tokens
        self.ts = ts


class LocalRateLimiter:
    """The same rules for one process (no Redis configured)."""

    def __init__(self, limits: Limits, clock: Any = time.monotonic) -> None:
        self.limits = limits
        self.clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, _Bucket] = {}
        self._leases: dict[str, dict[str, float]] = {}
        self._backoff_until: dict[str, float] = {}

    def _take(self, key: str, rate: int, n: int, now: float) -> int:
        if rate <= 0:
            return n
        bucket = self._buckets.setdefault(key, _Bucket(float(rate), now))
        bucket.tokens = min(float(rate), bucket.tokens + max(0.0, now - bucket.ts) * rate)
        bucket.ts = now
        got = min(n, int(bucket.tokens))
        bucket.tokens -= got
        return got

    def acquire(self, lease_id: str, wanted: Mapping[str, int]) -> Grant:
        limits = self.limits
        granted: dict[str, int] = {}
        backoff: dict[str, float] = {}
        with self._lock:
            now = self.clock()
            for domain, want in wanted.items():
                until = self._backoff_until.get(domain, 0.0)
                if until > now:
                    granted[domain] = 0
                    backoff[domain] = until - now
                    continue
                leases = self._leases.setdefault(domain, {})
                for lid in [k for k, exp in leases.items() if exp <= now]:
                    del leases[lid]
                if (
                    limits.domain_concurrency > 0
                    and lease_id not in leases
                    and len(leases) >= limits.domain_concurrency
                ):
                    granted[domain] = 0
                    continue
                got = self._take(f"domain:{domain}", limits.domain_rate_per_second, want, now)
                if got:
                    got = self._take("global", limits.rate_per_second, got, now)
                if got and limits.domain_concurrency > 0:
                    leases[lease_id] = now + limits.lease_seconds
                granted[domain] = got
        return Grant(granted, backoff)

    def end_lease(self, lease_id: str, domains: list[str]) -> None:
        with self._lock:
            for domain in domains:
                self._leases.get(domain, {}).pop(lease_id, None)

    def back_off(self, domain: str) -> None:
        with self._lock:
            self._backoff_until[domain] = self.clock() + self.limits.domain_backoff_seconds


_local: dict[Limits, LocalRateLimiter] = {}


def rate_limiter_for(settings: Settings) -> RateLimiter:
    """The shared limiter when Redis is configured, else this process's own."""
    limits = Limits.from_settings(settings)
    if settings.redis_url:
        import redis

        return RedisRateLimiter(redis.Redis.from_url(settings.redis_url), limits)
    if limits not in _local:
        _local[limits] = LocalRateLimiter(limits)
    return _local[limits]
