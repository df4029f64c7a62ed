"""``numaguard snapshot DIR``: capture this machine into the offline snapshot layout.

    DIR/host/sys/devices/system/node/...   the files SysfsReader reads (and a few the simulator
    DIR/host/proc/{meminfo,zoneinfo,...}   will want: zoneinfo, min_free_kbytes, has_memory)
    DIR/domains/*.xml                      the domain XMLs (/etc/libvirt/qemu by default)

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
entry does not stop the capture of a host, and nothing is left out silently.
"""

from __future__ import annotations

import errno
import glob
import os
import shutil
import stat
import tempfile

from numaguard.display import printable
from numaguard.errors import SourceError
from numaguard.readers.files import MAX_BYTES, read_bytes, read_fd
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


def _copy_domains(libvirt_dir: str, dst: str) -> tuple[int, str]:
    """Copy the regular ``*.xml`` files of *libvirt_dir* into *dst*; (count, note)."""
    try:
        dir_fd = os.open(libvirt_dir, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
                         | getattr(os, "O_CLOEXEC", 0))
    except PermissionError:
        return 0, f" ({libvirt_dir} is not readable: no domains copied)"
    except OSError:
        return 0, f" ({libvirt_dir} not found: no domains copied)"
    copied = 0
    skipped: list[str] = []
    try:
        try:
            names = sorted(n for n in os.listdir(dir_fd) if n.endswith(".xml"))
        except PermissionError:
            return 0, f" ({libvirt_dir} is not readable: no domains copied)"
        for name in names:
            data = _read_domain(dir_fd, name)
            if isinstance(data, str):
                skipped.append(f"{printable(name)}: {data}")
                continue
            _write(os.path.join(dst, name), data, SECRET_MODE)
            copied += 1
    finally:
        os.close(dir_fd)
    note = f" (skipped in {libvirt_dir}: {'; '.join(skipped)})" if skipped else ""
    return copied, note


def capture_snapshot(directory: str, *, root: str = "/",
                     libvirt_dir: str = "/etc/libvirt/qemu") -> str:
    """Capture into *directory*; return a one-paragraph summary for the user."""
    target = os.path.abspath(directory)
    if os.path.lexists(target):
        raise _exists(directory, target)
    parent = os.path.dirname(target)
    if not os.path.isdir(parent):
        raise SourceError(parent, "no such directory")
    # Check the root is readable as a topology before writing anything.
    host = SysfsReader(root).read_host()
    with signals_unwind():
        try:
            tmp = tempfile.mkdtemp(prefix=".numaguard-snapshot-", dir=parent)
        except OSError as exc:
            raise SourceError(directory, f"cannot create the snapshot in {parent}: "
                              f"{os_error(parent, exc).reason}") from None
        try:
            files = 0
            for pattern in SysfsReader.capture_paths() + EXTRA_PATHS:
                for src in sorted(glob.glob(os.path.join(root, pattern))):
                    rel = os.path.relpath(src, root)
                    data = read_bytes(src)
                    dst = os.path.join(tmp, "host", rel)
                    try:
                        os.makedirs(os.path.dirname(dst), exist_ok=True)
                    except OSError as exc:
                        raise _WriteFailed(exc) from None
                    _write(dst, data, OUTPUT_MODE)
                    files += 1
            try:
                os.mkdir(os.path.join(tmp, "domains"), 0o700)
            except OSError as exc:
                raise _WriteFailed(exc) from None
            ndomains, domains_note = _copy_domains(libvirt_dir, os.path.join(tmp, "domains"))
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
    return (f"snapshot {directory}: {len(host.nodes)} NUMA node(s), {files} host files, "
            f"{ndomains} domain XML(s){domains_note}")

