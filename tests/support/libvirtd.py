"""A real libvirtd with the QEMU driver for the integration tests (tests/integration/).

What works on this kind of machine (Debian 12, root, no systemd as PID 1, TCG only; measured,
see docs/libvirt.md): the packages of ``make libvirtd-deps``; three lines in
``/etc/libvirt/qemu.conf`` (:data:`QEMU_CONF_LINES`: QEMU runs as root, and its stdout/stderr go
to a file instead of virtlogd, which is not running); ``/usr/sbin/libvirtd -d -f CONF --pid-file
F``; ready once ``virsh -c qemu:///system version`` answers (0.3 s; 8-9 s on the very first
start, while it probes QEMU's capabilities).

``CONF`` is a private libvirtd.conf (:data:`DAEMON_CONF`; the system one is left untouched):
the read-write socket ``/run/libvirt/libvirt-sock`` belongs to the group ``libvirt`` with mode
0770, and no polkit check (polkitd is not running here) — libvirtd.conf's own documentation of
``unix_sock_group``, ``unix_sock_rw_perms`` and ``auth_unix_rw``.

Several test runs may overlap (several engineers share the machine).  :func:`acquire` holds a
shared ``flock`` on :data:`LOCK_FILE` for as long as a run uses the daemon, and starts the daemon
(under the exclusive lock) only when nothing answers on ``qemu:///system``; :func:`release`
stops it by the PID in :data:`PID_FILE` when it was started by a test run and no other run
still holds the lock.  A libvirtd that some one else started is used and never stopped.
"""

from __future__ import annotations

import contextlib
import fcntl
import grp
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

URI = "qemu:///system"
LIBVIRTD = "/usr/sbin/libvirtd"
QEMU = "/usr/bin/qemu-system-x86_64"
QEMU_CONF = Path("/etc/libvirt/qemu.conf")
QEMU_CONF_LINES = {"user": '"root"', "group": '"root"', "stdio_handler": '"file"'}
SOCKET = Path("/run/libvirt/libvirt-sock")
PID_FILE = Path("/run/numaguard-test-libvirtd.pid")
LOCK_FILE = Path("/run/numaguard-test-libvirtd.lock")
CONF_FILE = Path("/run/numaguard-test-libvirtd.conf")
LOG_FILE = Path("/var/log/libvirt/numaguard-test-libvirtd.log")
DAEMON_CONF = f"""\
# numaguard's test libvirtd (tests/support/libvirtd.py); the system libvirtd.conf is unchanged.
unix_sock_group = "libvirt"
unix_sock_ro_perms = "0777"
unix_sock_rw_perms = "0770"
auth_unix_ro = "none"
auth_unix_rw = "none"
log_outputs = "3:file:{LOG_FILE}"
"""
#: every test guest's name starts with this; :func:`release` destroys any that a crashed test left
GUEST_PREFIX = "ngtest-"
PACKAGES = ("libvirt-daemon-system libvirt-daemon-system-sysv libvirt-daemon-driver-qemu "
            "libvirt-clients qemu-system-x86 libvirt-dev pkg-config")


def unavailable() -> str | None:
    """Why this machine cannot run the test daemon (``None``: it can)."""
    if os.geteuid() != 0:
        return "the libvirtd tests start a system libvirtd and need root"
    for path in (LIBVIRTD, QEMU, shutil.which("virsh") or "virsh"):
        if not os.path.exists(path):
            return f"{path} is missing (`make libvirtd-deps` installs {PACKAGES})"
    try:
        import libvirt  # type: ignore[import-untyped]  # noqa: F401
    except ImportError as exc:
        return f"libvirt-python is not usable ({exc})"
    try:
        grp.getgrnam("libvirt")
    except KeyError:
        return "there is no libvirt group (libvirt-daemon-system creates it)"
    return None


def answers(uri: str = URI, timeout: float = 10.0) -> bool:
    """``virsh -c URI version`` succeeds."""
    try:
        return subprocess.run(["virsh", "-c", uri, "version"], capture_output=True, check=False,
                              timeout=timeout).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def ensure_qemu_conf(path: Path = QEMU_CONF) -> list[str]:
    """Append the :data:`QEMU_CONF_LINES` whose key is not set yet; return the lines added."""
    text = path.read_text()
    present = {line.split("=", 1)[0].strip() for line in text.splitlines()
               if "=" in line and not line.lstrip().startswith("#")}
    added = [f"{k} = {v}" for k, v in QEMU_CONF_LINES.items() if k not in present]
    if added:
        with path.open("a") as f:
            f.write(("" if text.endswith("\n") else "\n")
                    + "# added by numaguard's tests/support/libvirtd.py\n"
                    + "".join(line + "\n" for line in added))
    return added


def _pid() -> int | None:
    try:
        pid = int(PID_FILE.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    return pid if cmdline and cmdline[0].endswith(b"libvirtd") else None


@dataclass
class Daemon:
    """A libvirtd answering on :data:`URI`; ``pid`` is set when a test run started it (then the
    last run to release it stops it), ``None`` when it is someone else's."""

    pid: int | None
    lock_fd: int
    started_now: bool = False
    seconds: float = 0.0
    own_config: bool = False


def acquire(timeout: float = 90.0) -> Daemon:
    """A libvirtd for the tests: the one that answers already, else one started now."""
    fd = os.open(LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        ours = _pid()
        if answers():
            fcntl.flock(fd, fcntl.LOCK_SH)
            return Daemon(ours, fd, own_config=ours is not None)
        if ours is not None:           # ours, but not answering: stop it and start again
            _stop(ours)
        ensure_qemu_conf()
        CONF_FILE.write_text(DAEMON_CONF)
        t0 = time.monotonic()
        subprocess.run([LIBVIRTD, "-d", "-f", str(CONF_FILE), "--pid-file", str(PID_FILE)],
                       check=True, timeout=30)
        while not answers():
            if time.monotonic() - t0 > timeout:
                pid = _pid()
                if pid is not None:
                    _stop(pid)
                raise RuntimeError(f"libvirtd did not answer on {URI} within {timeout:.0f} s "
                                   f"(log: {LOG_FILE})")
            time.sleep(0.2)
        pid = _pid()
        fcntl.flock(fd, fcntl.LOCK_SH)
        return Daemon(pid, fd, started_now=True, seconds=time.monotonic() - t0,
                      own_config=True)
    except BaseException:
        os.close(fd)
        raise


def destroy_test_guests(uri: str = URI) -> list[str]:
    """Destroy and undefine every domain named :data:`GUEST_PREFIX`…; return their names."""
    import libvirt

    conn = libvirt.open(uri)
    gone: list[str] = []
    try:
        for dom in conn.listAllDomains(0):
            if not dom.name().startswith(GUEST_PREFIX):
                continue
            remove_guest(dom)
            gone.append(dom.name())
    finally:
        conn.close()
    return gone


def remove_guest(dom: object) -> None:
    """Destroy (if running) and undefine (if persistent) one domain handle."""
    import libvirt

    for step in ("destroy", "undefine"):
        try:
            if step == "destroy" and dom.isActive():  # type: ignore[attr-defined]
                dom.destroy()  # type: ignore[attr-defined]
            elif step == "undefine" and dom.isPersistent():  # type: ignore[attr-defined]
                dom.undefine()  # type: ignore[attr-defined]
        except libvirt.libvirtError as exc:
            if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                raise


def release(daemon: Daemon) -> bool:
    """Done with *daemon*: stop it (by PID) when a test run started it and no other run still
    uses it.  Returns whether it was stopped."""
    try:
        if daemon.pid is None:
            return False
        try:
            fcntl.flock(daemon.lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False                # another run still uses it: the last one stops it
        pid = _pid()
        if pid is None:
            return False
        destroy_test_guests()
        _stop(pid)
        return True
    finally:
        os.close(daemon.lock_fd)


def _alive(pid: int) -> bool:
    """*pid* exists and is not a zombie (PID 1 here need not reap the daemon it inherited)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


def _stop(pid: int, timeout: float = 30.0) -> None:
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            deadline += timeout
        time.sleep(0.05)
    with contextlib.suppress(FileNotFoundError):
        PID_FILE.unlink()
