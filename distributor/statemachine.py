"""A tiny explicit state machine: allowed moves in one table, illegal moves raise."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from typing import Generic, TypeVar

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

    def check(self, current: S, target: S) -> None:
        if not self.can(current, target):
            raise IllegalTransition(
                f"{self.name}: cannot move from {current.value} to {target.value}"
            )
