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


def kernel_image(touch_mib: int, vcpus: int = 1) -> bytes:
    """The multiboot image that touches *touch_mib* MiB (the guest needs at least
    ``touch_mib + 3`` MiB of RAM: the pages start at 2 MiB).  With *vcpus* = 2 vCPU 0 (the
    bootstrap processor) first starts vCPU 1 (:func:`_start_ap`) and each touches its half:
    vCPU 0 the first ``touch_mib // 2`` MiB, vCPU 1 the rest."""
    if not 1 <= touch_mib <= 3 * 1024:
        raise ValueError(f"touch_mib must be 1..3072, not {touch_mib}")
    if vcpus not in (1, 2):
        raise ValueError(f"vcpus must be 1 or 2, not {vcpus}")
    pages = touch_mib * MiB // PAGE
    entry = LOAD_ADDRESS + HEADER_SIZE
    code = bytearray()

    def at() -> int:
        return len(code)

    ap_fixups: list[int] = []
    if vcpus == 2:
        ap_fixups = _start_ap(code, entry)
        pages = touch_mib // 2 * MiB // PAGE
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
    if vcpus == 2:
        _ap_code(code, entry, ap_fixups, touch_mib, halt)
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


# -- the second vCPU ---------------------------------------------------------------------------
# Intel SDM vol. 3A, 8.4.4.1 "Typical BSP Initialization Sequence": the BSP copies a real-mode
# start-up routine below 1 MiB and sends the AP an INIT IPI and then STARTUP IPIs whose vector
# is that routine's page number; the AP starts in real mode at CS = vector << 8, IP = 0, loads a
# GDT, sets CR0.PE and far-jumps to 32-bit code (9.9.1 "Switching to Protected Mode").  The
# local APIC's registers are at its default base 0xFEE00000 (10.4.1): the spurious-interrupt
# vector register (0xF0, bit 8 = APIC software enable), the interrupt command register's high
# half (0x310, destination APIC ID in bits 24-31) and low half (0x300: writing it sends).
TRAMPOLINE = 0x8000               # the AP's start-up page (SIPI vector 0x08)
APIC = 0xFEE00000
APIC_SVR, APIC_ICR_LOW, APIC_ICR_HIGH = 0xF0, 0x300, 0x310
ICR_INIT, ICR_STARTUP = 0x4500, 0x4600   # delivery mode INIT / start-up, level assert
AP_APIC_ID = 1                    # QEMU numbers the vCPUs' APIC IDs 0, 1, ... (-smp N)
SELECTOR_CODE, SELECTOR_DATA = 0x08, 0x10


def _trampoline(ap_entry: int) -> bytes:
    """The AP's real-mode start-up routine, run at TRAMPOLINE: lgdt, CR0.PE, far jmp."""
    gdt_at = 32                                            # offset of the GDT in the routine
    code = bytearray()
    code += b"\xfa"                                        # cli
    code += b"\x66\x2e\x0f\x01\x16" + struct.pack("<H", gdt_at + 24)  # lgdt cs:[gdtr] (o32)
    code += b"\x0f\x20\xc0"                                # mov eax, cr0
    code += b"\x0c\x01"                                    # or al, 1 (PE)
    code += b"\x0f\x22\xc0"                                # mov cr0, eax
    code += b"\x66\xea" + struct.pack("<IH", ap_entry, SELECTOR_CODE)  # jmp dword 08:entry
    code += bytes(gdt_at - len(code))
    code += bytes(8)                                        # null descriptor
    code += bytes.fromhex("ffff0000009acf00")               # 0x08: flat 4 GiB code, 32-bit
    code += bytes.fromhex("ffff00000092cf00")               # 0x10: flat 4 GiB data
    code += struct.pack("<HI", 23, TRAMPOLINE + gdt_at)     # gdtr: limit, base
    return bytes(code)


def _mov_apic(code: bytearray, reg: int, value: int) -> None:
    code += b"\xc7\x05" + struct.pack("<II", APIC + reg, value)  # mov dword [APIC+reg], value


def _delay(code: bytearray, loops: int) -> None:
    code += b"\xb9" + struct.pack("<I", loops)             # mov ecx, loops
    code += b"\xe2\xfe"                                    # loop $


def _start_ap(code: bytearray, entry: int) -> list[int]:
    """BSP code: copy the trampoline to TRAMPOLINE, INIT + two STARTUP IPIs to vCPU 1.
    Returns the offsets of the operands to patch (trampoline source, its length)."""
    fix_src = len(code) + 1
    code += b"\xbe\x00\x00\x00\x00"                        # mov esi, trampoline (patched)
    code += b"\xbf" + struct.pack("<I", TRAMPOLINE)        # mov edi, TRAMPOLINE
    fix_len = len(code) + 1
    code += b"\xb9\x00\x00\x00\x00"                        # mov ecx, its length (patched)
    code += b"\xfc\xf3\xa4"                                # cld; rep movsb
    code += b"\x81\x0d" + struct.pack("<II", APIC + APIC_SVR, 0x100)  # or [SVR], enable
    for low, loops in ((ICR_INIT, 100000), (ICR_STARTUP | TRAMPOLINE >> 12, 10000),
                       (ICR_STARTUP | TRAMPOLINE >> 12, 10000)):
        _mov_apic(code, APIC_ICR_HIGH, AP_APIC_ID << 24)
        _mov_apic(code, APIC_ICR_LOW, low)
        _delay(code, loops)
    return [fix_src, fix_len]


def _ap_code(code: bytearray, entry: int, fixups: list[int], touch_mib: int,
             halt: int) -> None:
    """The AP's 32-bit code (flat segments, then its half of the pages, then halt) and the
    trampoline, appended to *code*; patches the BSP's copy operands."""
    ap_entry = entry + len(code)
    code += b"\x66\xb8" + struct.pack("<H", SELECTOR_DATA)  # mov ax, 0x10
    code += b"\x8e\xd8\x8e\xc0\x8e\xd0"                      # mov ds, ax; mov es, ax; mov ss, ax
    first = touch_mib // 2 * MiB
    code += b"\xbf" + struct.pack("<I", TOUCH_START + first)  # mov edi, start of its half
    code += b"\xb9" + struct.pack("<I", (touch_mib * MiB - first) // PAGE)  # mov ecx, pages
    touch = len(code)
    code += b"\x89\x3f"                                      # mov [edi], edi
    code += b"\x81\xc7" + struct.pack("<I", PAGE)            # add edi, 4096
    code += b"\x49"                                          # dec ecx
    code += b"\x75" + _rel8(len(code) + 2, touch)            # jnz touch
    code += b"\xfa"                                          # cli
    code += b"\xe9" + struct.pack("<i", halt - (len(code) + 5))  # jmp halt
    tramp = _trampoline(ap_entry)
    struct.pack_into("<I", code, fixups[0], entry + len(code))
    struct.pack_into("<I", code, fixups[1], len(tramp))
    code += tramp


def write_kernel(path: Path, touch_mib: int) -> Path:
    """Write :func:`kernel_image` to *path* (readable by QEMU) and return the path."""
    path.write_bytes(kernel_image(touch_mib))
    path.chmod(0o644)
    return path
