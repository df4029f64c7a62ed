"""``numaguard snapshot DIR``: capture this machine into the offline snapshot layout.

    DIR/host/sys/devices/system/node/...   the files SysfsReader reads (and a few the simulator
    DIR/host/proc/{meminfo,zoneinfo,...}   will want: zoneinfo, min_free_kbytes, has_memory)
    DIR/domains/*.xml                      the domain XMLs (/etc/libvirt/qemu by default)
    DIR/snapshot.json                      what was captured, where and when (below)

``snapshot.json`` (:data:`~numaguard.readers.sources.SNAPSHOT_SCHEMA`, read back by
:func:`numaguard.readers.sources.read_snapshot_meta`)::

    {"schema_version": 1, "numaguard_version": "0.1.0",
     "hostname": "hv07",                  # <root>/proc/sys/kernel/hostname, null if absent
     "captured_at": "2026-12-01T10:31:15Z",   # UTC
     "kernel_release": "6.1.0-56-amd64",  # <root>/proc/sys/kernel/osrelease or proc/version
     "domains": {"copied": 4, "skipped": [{"file": "evil.xml", "reason": "…"}]},
     "start_order": ["vm1", "db"]}        # running guests, oldest QEMU first; absent if none

``start_order``: libvirt writes each running QEMU's pid to ``<stateDir>/<name>.pid``
(``virPidFileBuildPath(cfg->stateDir, vm->def->name)`` in src/qemu/qemu_process.c;
``/run/libvirt/qemu`` for ``qemu:///system``), and a domain's config file is
``<configDir>/<name>.xml`` (``virDomainConfigFile``), so the XML's file name gives the pid file.
The order is field 22 of ``/proc/PID/stat`` (``starttime``, clock ticks after boot, proc(5)),
read after the last ``)`` since the command name may hold spaces and parentheses.  A guest
without a pid file, or whose pid is gone, is not running and left out; a pid file this user may
not read (``/run/libvirt`` is root's) leaves the order unknown, and the summary says so.

The snapshot is built in a private temporary folder beside DIR (``mkdtemp``: created
exclusively, mode 0700) and renamed into place at the end, so DIR appears complete or not at
all; an existing DIR — or a symlink named DIR, dangling or not — is never touched.  Any failure
(an unwritable or pseudo-file-system parent such as /proc or /sys, a full disk, SIGTERM) is one
line naming DIR, and the temporary folder is removed.

Modes: DIR stays 0700 as ``mkdtemp`` made it (it describes the host's guests); host files are
0644 minus the umask; ``domains/`` is 0700 and each domain XML 0600, as libvirt keeps them
(``virXMLSaveFile`` in src/util/virxml.c writes ``S_IRUSR | S_IWUSR``): they hold
``<graphics passwd=…>`` and other secrets, and a snapshot is made to be copied elsewhere.

Domain XMLs are copied only when they are regular files in the libvirt folder: a symlink there
is never followed (it may point anywhere, e.g. at /etc/shadow, and root would copy that into a
bundle meant for someone else), nor is a FIFO or device opened.  Each file passed over, and
each one this user may not read, is named in the summary — skipped, not refused, so one odd
entry does not stop the capture of a host, and nothing is left out silently.  But when there are
domain XMLs and none of them could be copied (all 0600 root and we are not root), or the folder
itself may not be read, the snapshot is refused (exit 2, nothing written): a snapshot without
its guests would audit as "no findings".
"""

from __future__ import annotations

import errno
import glob
import json
import os
import shutil
import stat
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

from numaguard import __version__
from numaguard.display import printable
from numaguard.errors import ParseError, PermissionDenied, SourceError
from numaguard.readers.domains import RUN_AS_ROOT, none_readable
from numaguard.readers.files import MAX_BYTES, read_bytes, read_fd, read_optional_text, read_text
from numaguard.readers.hostfacts import kernel_release
from numaguard.readers.sources import (
    CAPABILITIES_FILE,
    LIVE_DIR,
    SNAPSHOT_META,
    SNAPSHOT_SCHEMA,
)
from numaguard.readers.sysfs import SysfsReader
from numaguard.signals import signals_unwind
from numaguard.writers.xml_patch import (
    CREATE_NEW,
    OUTPUT_MODE,
    SECRET_MODE,
    os_error,
    write_all,
)

#: Captured too, for later analysis (watermarks, node states, CPU hotplug state).
EXTRA_PATHS = [
    "sys/devices/system/node/possible",
    "sys/devices/system/node/has_cpu",
    "sys/devices/system/node/has_memory",
    "sys/devices/system/node/has_normal_memory",
    "sys/devices/system/node/node*/numastat",
    "sys/devices/system/cpu/online",
    "sys/devices/system/cpu/offline",
    "proc/sys/vm/min_free_kbytes",
    "proc/version",
]

_NOFOLLOW_READ = (os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0)
                  | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0))


class _WriteFailed(Exception):
    """An OSError while writing inside the temporary folder (reported as DIR's)."""


def _exists(directory: str, target: str) -> SourceError:
    link = " (a symbolic link)" if os.path.islink(target) else ""
    return SourceError(directory, f"already exists{link}; choose a new folder for the snapshot")


def _write(dst: str, data: bytes, mode: int) -> None:
    try:
        fd = os.open(dst, CREATE_NEW, mode)
        try:
            write_all(fd, data)
        finally:
            os.close(fd)
    except OSError as exc:
        raise _WriteFailed(exc) from None


def _read_domain(dir_fd: int, name: str) -> bytes | str:
    """The bytes of the regular file *name* in the libvirt folder, or why it is skipped."""
    try:
        fd = os.open(name, _NOFOLLOW_READ, dir_fd=dir_fd)
    except PermissionError:
        return "permission denied"
    except OSError as exc:
        if exc.errno == errno.ELOOP:   # O_NOFOLLOW and the name is a symlink
            return "a symbolic link, not followed"
        return exc.strerror or str(exc)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return "not a regular file"
        if st.st_size > MAX_BYTES:
            return f"larger than {MAX_BYTES // (1024 * 1024)} MiB"
        data = read_fd(fd)
        if len(data) > MAX_BYTES:
            return f"larger than {MAX_BYTES // (1024 * 1024)} MiB"
        return data
    except OSError as exc:
        return exc.strerror or str(exc)
    finally:
        os.close(fd)


@dataclass
class _Domains:
    """What :func:`_copy_domains` did: the file names copied, and those passed over (why)."""

    copied: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    missing: bool = False    # no libvirt folder at all (a host without libvirt)

    def note(self, libvirt_dir: str) -> str:
        if self.missing:
            return f" ({libvirt_dir} not found: no domains copied)"
        if not self.skipped:
            return ""
        listing = "; ".join(f"{printable(name)}: {why}" if name else printable(why)
                            for name, why in self.skipped)
        return f" (skipped in {libvirt_dir}: {listing})"


def _unreadable_folder(libvirt_dir: str) -> SourceError:
    return SourceError(libvirt_dir, f"permission denied: no domain XML can be read; "
                       f"{RUN_AS_ROOT}, or give --libvirt-dir a readable folder")


def _none_copied(libvirt_dir: str, skipped: list[tuple[str, str]]) -> SourceError:
    """Every domain XML of the folder was passed over: refuse the snapshot (it would audit as a
    host without guests), saying why, e.g. ``3 domain XML files, none readable (permission
    denied): run as root …``."""
    reasons = Counter(why for _, why in skipped)
    why = next(iter(reasons)) if len(reasons) == 1 else ", ".join(
        f"{n} {reason}" for reason, n in reasons.most_common())
    hint = RUN_AS_ROOT if "permission denied" in reasons else \
        "nothing to copy; give --libvirt-dir the folder with the domain XMLs"
    paths = [os.path.join(libvirt_dir, printable(name)) for name, _ in skipped]
    return none_readable(paths, why, hint)


def _copy_domains(libvirt_dir: str, dst: str) -> _Domains:
    """Copy the regular ``*.xml`` files of *libvirt_dir* into *dst*."""
    done = _Domains()
    try:
        dir_fd = os.open(libvirt_dir, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
                         | getattr(os, "O_CLOEXEC", 0))
    except PermissionError:
        raise _unreadable_folder(libvirt_dir) from None
    except OSError:
        done.missing = True
        return done
    try:
        try:
            names = sorted(n for n in os.listdir(dir_fd) if n.endswith(".xml"))
        except PermissionError:
            raise _unreadable_folder(libvirt_dir) from None
        for name in names:
            data = _read_domain(dir_fd, name)
            if isinstance(data, str):
                done.skipped.append((name, data))
                continue
            _write(os.path.join(dst, name), data, SECRET_MODE)
            done.copied.append(name)
    finally:
        os.close(dir_fd)
    if names and not done.copied:
        raise _none_copied(libvirt_dir, done.skipped)
    return done


# -- snapshot.json -------------------------------------------------------------------------------

#: libvirt's state folder for qemu:///system, under --root
LIBVIRT_RUN_DIR = "run/libvirt/qemu"


def _starttime(root: str, pid: int) -> int | None:
    """Field 22 of ``<root>/proc/PID/stat`` (``starttime``); ``None`` when the process is gone
    or the line does not have it."""
    text = read_optional_text(os.path.join(root, "proc", str(pid), "stat"))
    if text is None or ")" not in text:
        return None
    fields = text[text.rindex(")") + 1:].split()   # fields 3 (state) onwards
    try:
        return int(fields[22 - 3])
    except (IndexError, ValueError):
        return None


def start_order(root: str, names: list[str]) -> tuple[list[str] | None, str]:
    """The running guests among *names* (domain names), oldest QEMU first (``[]``: none is
    running), or ``None`` and a note for the summary when this user cannot know."""
    run_dir = os.path.join(root, LIBVIRT_RUN_DIR)
    try:
        present = set(os.listdir(run_dir))
    except (FileNotFoundError, NotADirectoryError):
        return [], ""         # libvirtd is not running here: no guest is
    except PermissionError:
        return None, f"start order unknown ({run_dir}: permission denied)"
    started: list[tuple[int, str]] = []
    for name in names:
        if f"{name}.pid" not in present:
            continue
        try:
            pid = read_text(os.path.join(run_dir, f"{name}.pid")).strip()
        except PermissionDenied as exc:
            return None, f"start order unknown ({exc})"
        except (ParseError, SourceError):
            continue          # not a pid file libvirt wrote (not UTF-8, a FIFO…)
        if pid.isascii() and pid.isdigit():
            tick = _starttime(root, int(pid))
            if tick is not None:
                started.append((tick, name))
    return [name for _, name in sorted(started)], ""


def _hostname(root: str) -> str | None:
    text = read_optional_text(os.path.join(root, "proc", "sys", "kernel", "hostname"))
    return (text.strip() or None) if text is not None else None


def _kernel(root: str) -> str | None:
    try:
        return kernel_release(root)
    except ParseError:
        return None       # recorded as unknown; the captured proc/version shows what it was


def snapshot_meta(root: str | None, domains: _Domains, order: list[str] | None, *,
                  now: datetime | None = None) -> dict[str, object]:
    """The content of ``snapshot.json`` (the module docstring); *root* ``None``: a host
    read through a remote libvirt URI, whose host name and kernel are not known here."""
    when = (now or datetime.now(UTC)).astimezone(UTC)
    meta: dict[str, object] = {
        "schema_version": SNAPSHOT_SCHEMA,
        "numaguard_version": __version__,
        "hostname": _hostname(root) if root is not None else None,
        "captured_at": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "kernel_release": _kernel(root) if root is not None else None,
        "domains": {"copied": len(domains.copied),
                    "skipped": [{"file": n, "reason": why} for n, why in domains.skipped]},
    }
    if order:
        meta["start_order"] = order
    return meta


def _parent_error(directory: str, parent: str) -> SourceError | None:
    """Why the snapshot cannot be made in *parent*, checked before anything is read."""
    try:
        st = os.stat(parent)
    except FileNotFoundError:
        return SourceError(parent, "no such directory")
    except NotADirectoryError:
        return SourceError(parent, "no such directory (a part of the path is not a directory)")
    except PermissionError:
        return SourceError(directory, f"cannot create the snapshot in {parent}: permission "
                           "denied")
    except OSError as exc:
        return SourceError(parent, exc.strerror or str(exc))
    if not stat.S_ISDIR(st.st_mode):
        return SourceError(parent, "not a directory")
    return None


def capture_snapshot(directory: str, *, root: str = "/",
                     libvirt_dir: str = "/etc/libvirt/qemu", uri: str | None = None) -> str:
    """Capture into *directory*; return a one-paragraph summary for the user.

    *uri*: read the guests through libvirt instead of *libvirt_dir* (:func:`_libvirt_domains`);
    the host is this machine's sysfs under *root* for a URI of this machine, else libvirt's
    capabilities XML (``host/capabilities.xml``)."""
    from numaguard.readers.sources import is_this_machine

    target = os.path.abspath(directory)
    if os.path.lexists(target):
        raise _exists(directory, target)
    parent = os.path.dirname(target)
    problem = _parent_error(directory, parent)
    if problem is not None:
        raise problem
    local = uri is None or is_this_machine(uri)
    # Read what can fail before writing anything: the topology, and libvirt's domains.
    nodes = len(SysfsReader(root).read_host().nodes) if local else 0
    remote = _libvirt_domains(uri) if uri is not None else None
    if remote is not None and not local:
        nodes = remote.nodes
    with signals_unwind():
        try:
            tmp = tempfile.mkdtemp(prefix=".numaguard-snapshot-", dir=parent)
        except OSError as exc:
            raise SourceError(directory, f"cannot create the snapshot in {parent}: "
                              f"{os_error(parent, exc).reason}") from None
        try:
            files = 0
            if local:
                for pattern in SysfsReader.capture_paths() + EXTRA_PATHS:
                    for src in sorted(glob.glob(os.path.join(root, pattern))):
                        rel = os.path.relpath(src, root)
                        data = read_bytes(src)
                        dst = os.path.join(tmp, "host", rel)
                        _makedirs(os.path.dirname(dst))
                        _write(dst, data, OUTPUT_MODE)
                        files += 1
            else:
                assert remote is not None
                _makedirs(os.path.join(tmp, "host"))
                _write(os.path.join(tmp, "host", CAPABILITIES_FILE), remote.capabilities,
                       OUTPUT_MODE)
                files = 1
            try:
                os.mkdir(os.path.join(tmp, "domains"), 0o700)
            except OSError as exc:
                raise _WriteFailed(exc) from None
            if remote is None:
                domains = _copy_domains(libvirt_dir, os.path.join(tmp, "domains"))
                order, order_note = start_order(root, [n.removesuffix(".xml")
                                                       for n in domains.copied])
                meta = snapshot_meta(root, domains, order)
                where = libvirt_dir
            else:
                domains, order, order_note = remote.write(tmp)
                meta = snapshot_meta(root if local else None, domains, order)
                meta["source"] = uri
                meta["running"] = sorted(remote.running)
                where = str(uri)
            _write(os.path.join(tmp, SNAPSHOT_META),
                   (json.dumps(meta, indent=2) + "\n").encode(), OUTPUT_MODE)
            try:
                os.rename(tmp, target)
            except OSError as exc:
                if exc.errno in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR):
                    raise _exists(directory, target) from None   # created meanwhile
                raise _WriteFailed(exc) from None
        except _WriteFailed as failed:
            shutil.rmtree(tmp, ignore_errors=True)
            cause: OSError = failed.args[0]
            raise SourceError(directory, "cannot write the snapshot: "
                              f"{os_error(directory, cause).reason}") from None
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return summary(directory, nodes, files, domains.note(where), meta, order_note)


def _makedirs(path: str) -> None:
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise _WriteFailed(exc) from None




@dataclass
class _Remote:
    """What libvirt gave for a snapshot, read before anything is written."""

    capabilities: bytes
    nodes: int
    #: (name, persistent XML, live XML or None)
    domains: list[tuple[str, bytes, bytes | None]]
    running: frozenset[str]
    start_order: tuple[str, ...] | None
    notes: list[str]

    def write(self, tmp: str) -> tuple[_Domains, list[str] | None, str]:
        done = _Domains()
        live_dir = os.path.join(tmp, LIVE_DIR)
        for name, persistent, live in self.domains:
            if not _safe_file_name(name):
                done.skipped.append((name, "a name that is not a safe file name"))
                continue
            _write(os.path.join(tmp, "domains", f"{name}.xml"), persistent, SECRET_MODE)
            done.copied.append(f"{name}.xml")
            if live is not None:
                if not os.path.isdir(live_dir):
                    try:
                        os.mkdir(live_dir, 0o700)
                    except OSError as exc:
                        raise _WriteFailed(exc) from None
                _write(os.path.join(live_dir, f"{name}.xml"), live, SECRET_MODE)
        done.skipped += [("", note) for note in self.notes]
        order = list(self.start_order) if self.start_order else None
        return done, order, "" if self.running else "no guest running"


def _safe_file_name(name: str) -> bool:
    """libvirt refuses ``/`` in a domain name (``virXMLCheckIllegalChars``), but a name may
    still be ``..`` or start with a dot; such a guest is skipped (named in the summary)."""
    return bool(name) and "/" not in name and "\0" not in name and not name.startswith(".")


def _libvirt_domains(uri: str) -> _Remote:
    """Every domain of *uri*: its persistent XML (``VIR_DOMAIN_XML_INACTIVE``; a transient
    domain's live one), its live XML when it runs, and the capabilities XML."""
    from numaguard.readers.libvirt_api import LibvirtReader

    notes: list[str] = []
    with LibvirtReader(uri) as reader:
        capabilities = reader.capabilities()
        nodes = len(reader.host().nodes)
        xmls = list(reader.domain_xmls(notes=notes))
        order = reader.start_order([x for x in xmls if x.running]) or None
    return _Remote(capabilities, nodes, [(x.name, x.persistent, x.live) for x in xmls],
                   frozenset(x.name for x in xmls if x.running), order, notes)


def summary(directory: str, nodes: int, files: int, domains_note: str,
            meta: dict[str, object], order_note: str = "") -> str:
    """``snapshot DIR: 2 NUMA node(s), 28 host files, 4 domain XML(s); host hv07, kernel 6.1.0,
    2026-12-01T10:31:15Z; running, oldest first: vm1, db`` (one line)."""
    domains = meta["domains"]
    assert isinstance(domains, dict)
    facts = [f"host {meta['hostname'] or '(unknown)'}",
             f"kernel {meta['kernel_release'] or '(unknown)'}", str(meta["captured_at"])]
    order = meta.get("start_order")
    if isinstance(order, list):
        running = f"running, oldest first: {', '.join(order)}"
    else:
        running = order_note or "no guest running"
    return (f"snapshot {directory}: {nodes} NUMA node(s), {files} host files, "
            f"{domains['copied']} domain XML(s){domains_note}; {', '.join(facts)}; {running}")
