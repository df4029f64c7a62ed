"""Domain XML files: one file, or every ``*.xml`` of a folder (``/etc/libvirt/qemu`` style)."""

from __future__ import annotations

import os
from collections.abc import Container
from typing import NamedTuple

from numaguard.domxml.document import DomainDocument
from numaguard.domxml.extract import extract_guest
from numaguard.errors import InvalidDocument, ParseError, PermissionDenied, SourceError
from numaguard.model.guest import Guest
from numaguard.model.inventory import Problem
from numaguard.readers.files import read_bytes, read_listed_bytes


def read_domain_file(path: str, *, listed: bool = False) -> Guest:
    """The guest in the domain XML *path*; *listed*: a directory listing just showed it to be a
    regular file, not a link (:func:`~numaguard.readers.files.read_listed_bytes`)."""
    data = read_listed_bytes(path) if listed else read_bytes(path)
    return extract_guest(DomainDocument(data, path=path))


def list_domain_files(folder: str) -> list[str]:
    """Every ``*.xml`` of *folder* but folders, sorted."""
    return [listed.path for listed in list_domain_files_keyed(folder)]


class ListedFile(NamedTuple):
    """A domain XML found in a folder."""

    path: str
    #: ``os.path.realpath(path)``: the key that tells two names of one file from two files
    real: str
    #: the listing showed a regular file, not a link (read with ``read_listed_bytes``)
    plain: bool


def list_domain_files_keyed(folder: str) -> list[ListedFile]:
    """Every ``*.xml`` of *folder* but folders, sorted, each with its real path.

    The real path costs one ``realpath`` of the folder, not one per file (four ``lstat`` calls
    each): for an entry that is not a symbolic link it is the folder's real path joined with the
    name.  Whether an entry is a link or a folder comes from the directory listing itself
    (``os.scandir``'s file type), so a plain file costs no system call at all here."""
    try:
        with os.scandir(folder) as listing:
            # Every *.xml but folders is read, so a FIFO, a device or a dangling link named
            # like a domain is an error naming it (readers.files refuses it), never silently
            # left out.
            entries = [(entry.name, entry.is_symlink(), entry.is_file(follow_symlinks=False))
                       for entry in listing
                       if entry.name.endswith(".xml") and not _is_dir(entry)]
    except FileNotFoundError:
        raise SourceError(folder, "no such directory") from None
    except NotADirectoryError:
        raise SourceError(folder, "not a directory") from None
    except PermissionError:
        raise PermissionDenied(folder) from None
    real_folder = os.path.realpath(folder)
    keyed = []
    for name, link, plain in entries:
        path = os.path.join(folder, name)
        real = os.path.realpath(path) if link else os.path.join(real_folder, name)
        keyed.append(ListedFile(path, real, plain and not link))
    keyed.sort()
    return keyed


def _is_dir(entry: os.DirEntry[str]) -> bool:
    """``os.path.isdir`` of the entry (links followed; an error is "not a folder")."""
    try:
        return entry.is_dir()
    except OSError:
        return False


def read_domain_files(paths: list[str], *, listed: Container[str] = ()) -> list[Guest]:
    """Read every file; if any is invalid or unreadable, raise one :class:`InvalidDocument`
    listing the problems of all of them (a user fixes them in one go).  *listed*: the paths a
    directory listing just showed to be regular files (:class:`ListedFile`'s ``plain``).

    When there are domain XMLs but this user may read none of them (``/etc/libvirt/qemu`` keeps
    them 0600 root), that is one line saying so (:func:`none_readable`), never a host with no
    guests: an audit of it would be "no findings", exit 0."""
    guests, _ = read_domain_files_partial(paths, listed=listed, strict=paths)
    return guests


def read_domain_files_partial(paths: list[str], *, listed: Container[str] = (),
                              strict: Container[str] = ()) -> tuple[list[Guest], list[Problem]]:
    """Read every file, keeping going past the ones that cannot be read: ``(guests,
    problems)``, one :class:`~numaguard.model.inventory.Problem` per problem (a file with
    three bad fields has three, each naming the field and line).

    The files in *strict* (named on their own by the user) may not fail: when one does, one
    :class:`InvalidDocument` lists every problem of every file.  None readable at all (this
    user may read none of them) is one :class:`SourceError` (:func:`none_readable`).  Two
    files defining the same guest name are an error, as in libvirt."""
    guests: list[Guest] = []
    problems: list[ParseError] = []
    denied: list[str] = []
    failed_strict = False
    for path in paths:
        try:
            guests.append(read_domain_file(path, listed=path in listed))
            continue
        except InvalidDocument as exc:
            problems.extend(exc.problems)
        except ParseError as exc:
            problems.append(exc.located(path=path))
        except SourceError as exc:   # not read at all: missing, refused (a FIFO…), denied
            if isinstance(exc, PermissionDenied):
                denied.append(path)
            problems.append(ParseError(exc.reason, path=exc.path))
        failed_strict = failed_strict or path in strict
    if paths and len(denied) == len(paths):
        raise none_readable(paths)
    if failed_strict:
        raise InvalidDocument(problems)
    names: dict[str, str] = {}
    for g in guests:
        if g.name in names:
            raise SourceError(g.source or "?", f"guest name {g.name!r} is also defined in "
                              f"{names[g.name]}")
        names[g.name] = g.source or "?"
    return guests, [_problem(p) for p in problems]


def _problem(err: ParseError) -> Problem:
    return Problem(err.path or "?", f"{err.field}: {err.reason}" if err.field else err.reason,
                   err.line)


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
    listed = list_domain_files_keyed(folder)
    return read_domain_files([f.path for f in listed], listed={f.path for f in listed if f.plain})


def read_domain_dir_partial(folder: str) -> tuple[list[Guest], list[Problem]]:
    """:func:`read_domain_files_partial` of every ``*.xml`` of *folder*."""
    listed = list_domain_files_keyed(folder)
    return read_domain_files_partial([f.path for f in listed],
                                     listed={f.path for f in listed if f.plain})
