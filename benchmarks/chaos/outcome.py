"""What one scenario found, as a line of the report (and as JSON across a namespace)."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from benchmarks.chaos.check import Verdict


@dataclass
class Outcome:
    name: str
    verdict: Verdict | None = None
    bound: int = 0
    seconds: float = 0.0
    skipped: str | None = None  # the reason, when the scenario could not run here
    error: str | None = None  # the harness itself could not finish the scenario
    notes: list[str] = field(default_factory=list)

    @property
    def is_ok(self) -> bool:
        if self.skipped is not None:
            return True
        v = self.verdict
        return (
            self.error is None
            and v is not None
            and v.duplicates == 0
            and v.lost == 0
            and v.in_doubt <= self.bound
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if self.verdict is not None:
            data["verdict"]["statuses"] = dict(self.verdict.statuses)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Outcome:
        verdict = data.pop("verdict", None)
        outcome = cls(**data)
        if verdict is not None:
            statuses = Counter(verdict.pop("statuses", {}))
            outcome.verdict = Verdict(**verdict, statuses=statuses)
        return outcome

    def line(self) -> str:
        if self.skipped is not None:
            return f"chaos: {self.name}: skipped: {self.skipped}"
        v = self.verdict
        if v is None:
            return f"chaos: {self.name}: ERROR {self.error}"
        statuses = " ".join(f"{k}={n}" for k, n in sorted(v.statuses.items()))
        extra = f"; {'; '.join(self.notes)}" if self.notes else ""
        if self.error:
            extra += f"; harness: {self.error}"
        if v.wrongly_suppressed:
            extra += f"; {v.wrongly_suppressed} addresses suppressed without a recipient refusal"
        if v.strays:
            extra += f"; {v.strays} messages for nobody in the ledger"
        return (
            f"chaos: {self.name}: {'ok' if self.is_ok else 'FAIL'}: {v.messages} messages, "
            f"{v.duplicates} duplicates, {v.lost} lost, {v.in_doubt} in doubt "
            f"({v.in_doubt_delivered} of them delivered) (bound {self.bound}), "
            f"{self.seconds:.0f}s [{statuses}]{extra}"
        )


def summary(outcomes: list[Outcome]) -> str:
    """The last line of ``make chaos``."""
    ran = [o for o in outcomes if o.skipped is None]
    verdicts = [o.verdict for o in ran if o.verdict is not None]
    return (
        f"chaos: {len(ran)} scenarios, {sum(v.messages for v in verdicts)} messages, "
        f"{sum(v.duplicates for v in verdicts)} duplicates, {sum(v.lost for v in verdicts)} "
        f"lost, {sum(v.in_doubt for v in verdicts)} in doubt (bound {sum(o.bound for o in ran)})"
    )
