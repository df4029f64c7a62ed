"""Domain XML files: one file, or every ``*.xml`` of a folder (``/etc/libvirt/qemu`` style)."""

from __future__ import annotations

import os

from numaguard.domxml.document import DomainDocument
from numaguard.domxml.extract import extract_guest
from numaguard.errors import InvalidDocument, ParseError, PermissionDenied, SourceError
from numaguard.model.guest import Guest
from numaguard.readers.files import read_bytes


def read_domain_file(path: str) -> Guest:
    return extract_guest(DomainDocument(read_bytes(path), path=path))


def list_domain_files(folder: str) -> list[str]:
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        raise SourceError(folder, "no such directory") from None
    except NotADirectoryError:
        raise SourceError(folder, "not a directory") from None
    except PermissionError:
        raise PermissionDenied(folder) from None
    # Every *.xml but folders is read, so a FIFO, a device or a dangling link named like a
    # domain is an error naming it (readers.files refuses it), never silently left out.
    return sorted(os.path.join(folder, n) for n in names
                  if n.endswith(".xml") and not os.path.isdir(os.path.join(folder, n)))


def read_domain_files(paths: list[str]) -> list[Guest]:
    """Read every file; if any is invalid, raise one :class:`InvalidDocument` listing the
    problems of all of them (a user fixes them in one go)."""
    guests: list[Guest] = []
    problems: list[ParseError] = []
    for path in paths:
        try:
            guests.append(read_domain_file(path))
        except InvalidDocument as exc:
            problems.extend(exc.problems)
        except ParseError as exc:
            problems.append(exc.located(path=path))
    if problems:
        raise InvalidDocument(problems)
    names: dict[str, str] = {}
    for g in guests:
        if g.name in names:
            raise SourceError(g.source or "?", f"guest name {g.name!r} is also defined in "
                              f"{names[g.name]}")
        names[g.name] = g.source or "?"
    return guests


def read_domain_dir(folder: str) -> list[Guest]:
    return read_domain_files(list_domain_files(folder))
