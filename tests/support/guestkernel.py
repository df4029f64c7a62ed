"""A guest kernel of a few dozen bytes that writes N MiB of guest RAM, says so, and halts.

A test guest (``<domain type='qemu'>`` with ``<os><kernel>PATH</kernel>``) then holds a known
amount of host memory: QEMU allocates guest RAM lazily (an anonymous mapping), so what the
guest never writes is never resident.  The image is built here, byte by byte:

* a Multiboot (version 1) header with the "a.out kludge" (flags bit 16): the header gives the
  load address, the end of the loaded image and the entry point, so the file needs no ELF
  headers.  QEMU's ``-kernel`` loader (``hw/i386/multiboot.c``) boots a file whose first
  8 KiB hold such a header (Multiboot Specification 0.6.96, section 3.1 "OS image format").
* 32-bit code: the loader enters it in flat protected mode with paging off and interrupts
  disabled (specification section 3.2 "Machine state"), so addresses are physical and no stack
  is needed (none is used).  It writes one dword into each 4 KiB page of
  ``[2 MiB, 2 MiB + N MiB)`` (a write per page makes the host page resident), writes
  ``numaguard-guest: touched N MiB`` to COM1 (I/O port 0x3F8, waiting for the transmitter
  holding register to be empty: bit 5 of the line status register 0x3FD), then halts for good
  (``cli; hlt``).
"""

from __future__ import annotations

import struct
from pathlib import Path

MiB = 1024 * 1024
LOAD_ADDRESS = 0x100000           # 1 MiB, where multiboot kernels are conventionally loaded
TOUCH_START = 2 * MiB             # above the image and the loader's multiboot info
PAGE = 4096
MULTIBOOT_MAGIC = 0x1BADB002
MULTIBOOT_AOUT_KLUDGE = 1 << 16
HEADER_SIZE = 32                  # magic, flags, checksum + the five address fields
COM1, COM1_LSR, LSR_THR_EMPTY = 0x3F8, 0x3FD, 0x20


def message(touch_mib: int) -> bytes:
    """What the kernel writes to COM1 when it has touched its memory."""
    return f"numaguard-guest: touched {touch_mib} MiB\n".encode("ascii")


def _rel8(source_end: int, target: int) -> bytes:
    delta = target - source_end
    assert -128 <= delta <= 127, delta
    return struct.pack("<b", delta)


def kernel_image(touch_mib: int) -> bytes:
    """The multiboot image that touches *touch_mib* MiB (the guest needs at least
    ``touch_mib + 3`` MiB of RAM: the pages start at 2 MiB)."""
    if not 1 <= touch_mib <= 3 * 1024:
        raise ValueError(f"touch_mib must be 1..3072, not {touch_mib}")
    pages = touch_mib * MiB // PAGE
    entry = LOAD_ADDRESS + HEADER_SIZE
    code = bytearray()

    def at() -> int:
        return len(code)

    code += b"\xbf" + struct.pack("<I", TOUCH_START)         # mov edi, TOUCH_START
    code += b"\xb9" + struct.pack("<I", pages)               # mov ecx, pages
    touch = at()
    code += b"\x89\x3f"                                      # mov [edi], edi
    code += b"\x81\xc7" + struct.pack("<I", PAGE)            # add edi, 4096
    code += b"\x49"                                          # dec ecx
    code += b"\x75" + _rel8(at() + 2, touch)                 # jnz touch
    msg_operand = at() + 1
    code += b"\xbe\x00\x00\x00\x00"                          # mov esi, msg (patched below)
    next_char = at()
    code += b"\xac"                                          # lodsb
    code += b"\x84\xc0"                                      # test al, al
    jz_done = at()
    code += b"\x74\x00"                                      # jz done (patched below)
    code += b"\x88\xc4"                                      # mov ah, al
    wait = at()
    code += b"\x66\xba" + struct.pack("<H", COM1_LSR)        # mov dx, 0x3FD
    code += b"\xec"                                          # in al, dx
    code += b"\xa8" + bytes([LSR_THR_EMPTY])                 # test al, 0x20
    code += b"\x74" + _rel8(at() + 2, wait)                  # jz wait
    code += b"\x88\xe0"                                      # mov al, ah
    code += b"\x66\xba" + struct.pack("<H", COM1)            # mov dx, 0x3F8
    code += b"\xee"                                          # out dx, al
    code += b"\xeb" + _rel8(at() + 2, next_char)             # jmp next_char
    done = at()
    code += b"\xfa"                                          # cli
    halt = at()
    code += b"\xf4"                                          # hlt
    code += b"\xeb" + _rel8(at() + 2, halt)                  # jmp halt (after an NMI)
    code[jz_done + 1:jz_done + 2] = _rel8(jz_done + 2, done)
    struct.pack_into("<I", code, msg_operand, entry + at())
    code += message(touch_mib) + b"\x00"

    size = HEADER_SIZE + len(code)
    checksum = (-(MULTIBOOT_MAGIC + MULTIBOOT_AOUT_KLUDGE)) & 0xFFFFFFFF
    header = struct.pack("<8I", MULTIBOOT_MAGIC, MULTIBOOT_AOUT_KLUDGE, checksum,
                         LOAD_ADDRESS,             # header_addr: the header is the first byte
                         LOAD_ADDRESS,             # load_addr
                         LOAD_ADDRESS + size,      # load_end_addr
                         0,                        # bss_end_addr: no bss
                         entry)                    # entry_addr
    return header + bytes(code)


def write_kernel(path: Path, touch_mib: int) -> Path:
    """Write :func:`kernel_image` to *path* (readable by QEMU) and return the path."""
    path.write_bytes(kernel_image(touch_mib))
    path.chmod(0o644)
    return path
