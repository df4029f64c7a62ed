"""What the audit reports: findings with a severity, evidence in numbers and a concrete fix."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from numaguard.core.changes import Change, SetMaxMemory, SetMemnode, SetMemoryPolicy
from numaguard.model.policy import MemoryMode


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

    @property
    def changes(self) -> tuple[Change, ...]:
        """The fix as typed changes (:mod:`numaguard.core.changes`); ``()`` for advice the
        model cannot make (a host setting, a pinning told in words)."""
        if self.memory is not None:
            return (SetMaxMemory(self.guest, self.memory),)
        if self.mode is None or self.nodeset is None:
            return ()
        mode = MemoryMode(self.mode)
        if self.cell is not None:
            return (SetMemnode(self.guest, self.cell, mode, self.nodeset),)
        return (SetMemoryPolicy(self.guest, mode, self.nodeset),)


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
