"""A tiny explicit state machine: allowed moves in one table, illegal moves raise.

Set-based writes (an ``UPDATE ... WHERE status IN (...)``, raw SQL included) take their status
guard from the machine through ``guard`` / ``sql_guard``: the guard names only the sources the
machine allows for the target, and asking for a move the machine does not allow raises. So a
transition removed from the table breaks every statement that relied on it.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from typing import Any, Generic, TypeVar

from distributor.errors import IllegalTransition

S = TypeVar("S", bound=enum.Enum)


class StateMachine(Generic[S]):
    def __init__(self, name: str, transitions: Mapping[S, Iterable[S]]) -> None:
        self.name = name
        self._allowed: dict[S, frozenset[S]] = {k: frozenset(v) for k, v in transitions.items()}

    def can(self, current: S, target: S) -> bool:
        return target in self._allowed.get(current, frozenset())

    def allowed_from(self, current: S) -> frozenset[S]:
        return self._allowed.get(current, frozenset())

    def sources(self, target: S) -> frozenset[S]:
        """Every status the machine lets move to ``target``."""
        return frozenset(s for s, targets in self._allowed.items() if target in targets)

    def check(self, current: S, target: S) -> None:
        if not self.can(current, target):
            raise IllegalTransition(
                f"{self.name}: cannot move from {current.value} to {target.value}"
            )

    def move_sources(self, target: S, expected: Iterable[S]) -> list[S]:
        """The sources of a set-based move to ``target`` from ``expected``; every one of them
        must be allowed (raises otherwise). Sorted, so generated SQL is stable."""
        sources = sorted(set(expected), key=lambda s: str(s.value))
        if not sources:
            raise ValueError(f"{self.name}: a move to {target.value} needs at least one source")
        for source in sources:
            self.check(source, target)
        return sources

    def sql_guard(self, target: S, expected: Iterable[S], *, column: str = "status") -> str:
        """``status = 'a'`` / ``status IN ('a', 'b')`` for raw SQL moving rows to ``target``."""
        values = [str(s.value) for s in self.move_sources(target, expected)]
        for value in values:
            if "'" in value:  # never: enum values are identifiers
                raise ValueError(value)
        if len(values) == 1:
            return f"{column} = '{values[0]}'"
        return f"{column} IN (" + ", ".join(f"'{v}'" for v in values) + ")"

    def guard(self, column: Any, target: S, expected: Iterable[S]) -> Any:
        """The same guard as a SQLAlchemy expression on ``column``."""
        sources = self.move_sources(target, expected)
        return column == sources[0] if len(sources) == 1 else column.in_(sources)
