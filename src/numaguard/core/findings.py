"""What the audit reports: findings with a severity, evidence in numbers and a concrete fix."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any


class Severity(IntEnum):
    INFO = 1
    WARNING = 2
    CRITICAL = 3

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Severity:
        try:
            return cls[text.upper()]
        except KeyError:
            raise ValueError(f"unknown severity {text!r} (critical, warning, info)") from None


@dataclass(frozen=True, slots=True)
class Fix:
    """A concrete change.  ``mode``/``nodeset`` describe a new ``<numatune>`` when the fix is a
    memory-policy change (``cell`` for a memnode), ``memory`` a new maximum memory; ``commands``
    are the lines that make it."""

    guest: str
    description: str
    mode: str | None = None
    nodeset: frozenset[int] | None = None
    cell: int | None = None
    commands: tuple[str, ...] = ()
    #: a new maximum memory (bytes) for the guest, when the fix is a resize
    memory: int | None = None


@dataclass(frozen=True, slots=True)
class Finding:
    rule: str
    severity: Severity
    message: str
    guests: tuple[str, ...] = ()
    nodes: tuple[int, ...] = ()
    evidence: Mapping[str, Any] = field(default_factory=dict)
    fix: Fix | None = None

    def sort_key(self) -> tuple[int, str, tuple[str, ...], tuple[int, ...]]:
        return (-int(self.severity), self.rule, self.guests, self.nodes)
