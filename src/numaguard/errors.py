"""Exception hierarchy.

Every error names its source: the file (or other source) and, where it can, the line and the
field.  The CLI prints ``str(error)`` as one line per problem and exits with code 2; nothing
below ever needs a traceback to be understood.

Pure parsers (units, cpuset, model/policy) raise :class:`ParseError` with only a ``field`` and a
``reason``; the edge that read the text adds the path and line with :meth:`ParseError.located`.
"""

from __future__ import annotations

from collections.abc import Iterable


class NumaguardError(Exception):
    """Base class of every error numaguard reports to its user (exit code 2)."""


class ParseError(NumaguardError, ValueError):
    """A value or document that does not parse.  ``str()`` is ``path:line: field: reason``."""

    def __init__(
        self,
        reason: str,
        *,
        field: str | None = None,
        path: str | None = None,
        line: int | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field
        self.path = path
        self.line = line

    def located(
        self, *, path: str | None = None, line: int | None = None, field: str | None = None
    ) -> ParseError:
        """A copy of this error with path/line/field filled in where they were still unknown."""
        err = type(self).__new__(type(self))
        ParseError.__init__(
            err,
            self.reason,
            field=self.field if self.field is not None else field,
            path=self.path if self.path is not None else path,
            line=self.line if self.line is not None else line,
        )
        return err

    def __str__(self) -> str:
        where = ""
        if self.path is not None:
            where = self.path + (f":{self.line}" if self.line is not None else "") + ": "
        elif self.line is not None:
            where = f"line {self.line}: "
        field = f"{self.field}: " if self.field else ""
        return f"{where}{field}{self.reason}"


class NodesetError(ParseError):
    """A libvirt nodeset/cpuset or a sysfs cpulist that does not parse."""


class UnitError(ParseError):
    """A size or unit that libvirt would not accept."""


class InvalidDocument(NumaguardError):
    """All problems found in one document, reported together (the user fixes them at once)."""

    def __init__(self, problems: Iterable[ParseError]) -> None:
        self.problems: tuple[ParseError, ...] = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.problems)


class SourceError(NumaguardError):
    """A source that cannot be read: missing, unreadable, or of an unknown kind."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class PermissionDenied(SourceError):
    """The source exists but this user may not read it (never swallowed)."""

    def __init__(self, path: str) -> None:
        super().__init__(path, "permission denied")
