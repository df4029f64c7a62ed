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
    """Read every file; if any is invalid or unreadable, raise one :class:`InvalidDocument`
    listing the problems of all of them (a user fixes them in one go).

    When there are domain XMLs but this user may read none of them (``/etc/libvirt/qemu`` keeps
    them 0600 root), that is one line saying so (:func:`none_readable`), never a host with no
    guests: an audit of it would be "no findings", exit 0."""
    guests: list[Guest] = []
    problems: list[ParseError] = []
    denied: list[str] = []
    for path in paths:
        try:
            guests.append(read_domain_file(path))
        except InvalidDocument as exc:
            problems.extend(exc.problems)
        except ParseError as exc:
            problems.append(exc.located(path=path))
        except SourceError as exc:   # not read at all: missing, refused (a FIFO…), denied
            if isinstance(exc, PermissionDenied):
                denied.append(path)
            problems.append(ParseError(exc.reason, path=exc.path))
    if paths and len(denied) == len(paths):
        raise none_readable(paths)
    if problems:
        raise InvalidDocument(problems)
    names: dict[str, str] = {}
    for g in guests:
        if g.name in names:
            raise SourceError(g.source or "?", f"guest name {g.name!r} is also defined in "
                              f"{names[g.name]}")
        names[g.name] = g.source or "?"
    return guests


#: what to do when the domain XMLs are there but not readable
RUN_AS_ROOT = "run as root (libvirt keeps them 0600 root) or copy them somewhere readable"


def none_readable(paths: list[str], reason: str = "permission denied",
                  hint: str = RUN_AS_ROOT) -> SourceError:
    """The error for *paths* (domain XMLs that exist) of which none could be read: ``FOLDER: 3
    domain XML files, none readable (permission denied): run as root …``, named by their
    folder when they share one (one file: ``FILE: permission denied: run as root …``)."""
    if len(paths) == 1:
        return SourceError(paths[0], f"{reason}: {hint}")
    folders = sorted({os.path.dirname(p) or "." for p in paths})
    where = folders[0] if len(folders) == 1 else ", ".join(paths)
    return SourceError(where, f"{len(paths)} domain XML files, none readable ({reason}): {hint}")


def read_domain_dir(folder: str) -> list[Guest]:
    return read_domain_files(list_domain_files(folder))
