"""Byte-exact edits of ``<numatune>``: only its subtree changes, every other byte is kept.

Element positions come from expat (``CurrentByteIndex`` at each start and end tag), so
comments, CDATA, attribute quoting and foreign namespaces elsewhere in the document are never
re-serialised.  New text follows the document's own conventions: its indentation unit, its
newline, its attribute quote character (libvirt writes ``'``).

``<numatune>`` is created, when absent, where libvirt's own formatter puts it
(``virDomainDefFormatInternal``): after ``<cputune>`` and the other tuning elements that precede
it, before ``<resource>``/``<sysinfo>``/``<os>``.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import accumulate
from xml.parsers import expat

from numaguard.core.changes import Change, SetMemnode, SetMemoryPolicy
from numaguard.cpuset import format_bitmap
from numaguard.domxml.document import DomainDocument
from numaguard.errors import ParseError
from numaguard.model.policy import MODE_NAMES, MemoryMode, MemoryPolicy

#: Elements libvirt formats before <numatune>, in its order.
BEFORE_NUMATUNE = ("name", "uuid", "genid", "title", "description", "metadata", "maxMemory",
                   "memory", "currentMemory", "blkiotune", "memtune", "memoryBacking", "vcpu",
                   "vcpus", "iothreads", "iothreadids", "defaultiothread", "cputune")
MODES = MODE_NAMES


@dataclass(frozen=True, slots=True)
class MemnodeEdit:
    cellid: int
    mode: str
    nodeset: frozenset[int]


@dataclass(frozen=True, slots=True)
class NumatuneEdit:
    """What to set.  ``mode``/``nodeset`` apply to ``<memory>`` (``nodeset=None`` keeps the
    current one); each memnode replaces or adds ``<memnode cellid=…>``."""

    mode: str | None = None
    nodeset: frozenset[int] | None = None
    memnodes: tuple[MemnodeEdit, ...] = ()

    @property
    def empty(self) -> bool:
        return self.mode is None and self.nodeset is None and not self.memnodes

    @classmethod
    def from_changes(cls, changes: Iterable[Change]) -> NumatuneEdit:
        """The edit that makes *changes* (:mod:`numaguard.core.changes`: ``SetMemoryPolicy``
        and ``SetMemnode`` of one guest; a later change of the same thing wins)."""
        mode: str | None = None
        nodeset: frozenset[int] | None = None
        memnodes: dict[int, MemnodeEdit] = {}
        guests = set()
        for c in changes:
            guests.add(c.guest)
            if isinstance(c, SetMemoryPolicy):
                mode, nodeset = c.mode.value, c.nodeset
            elif isinstance(c, SetMemnode):
                memnodes[c.cell] = MemnodeEdit(c.cell, c.mode.value, c.nodeset)
            else:
                raise TypeError(f"not a <numatune> change: {c!r}")
        if len(guests) > 1:
            raise ValueError(f"one guest per edit, not {', '.join(sorted(guests))}")
        return cls(mode, nodeset, tuple(memnodes[k] for k in sorted(memnodes)))

    def changes(self, guest: str, current: MemoryPolicy | None = None) -> tuple[Change, ...]:
        """This edit as typed changes of *guest*; *current* is its ``<memory>`` policy now, for
        an edit that sets only the mode or only the nodeset (``()`` for that part when the
        other half is unknown, e.g. a mode with no nodeset anywhere)."""
        out: list[Change] = []
        if self.mode is not None or self.nodeset is not None:
            mode = self.mode or (current.mode.value if current else "strict")
            nodeset = self.nodeset if self.nodeset is not None else (
                current.nodeset if current else None)
            if nodeset is not None:
                out.append(SetMemoryPolicy(guest, MemoryMode(mode), nodeset))
        out += [SetMemnode(guest, m.cellid, MemoryMode(m.mode), m.nodeset)
                for m in self.memnodes]
        return tuple(out)


@dataclass(slots=True)
class _Span:
    tag: str
    depth: int
    start: int          # offset of '<'
    head_end: int       # offset after the start tag's '>'
    end: int = -1       # offset after the element's last byte
    attrs: dict[str, str] | None = None
    parent: int = -1


def element_spans(data: bytes, max_depth: int = 2) -> list[_Span]:
    """Byte spans of the elements down to *max_depth* (0 = the root)."""
    parser = expat.ParserCreate()
    parser.buffer_text = False
    spans: list[_Span] = []
    stack: list[int] = []

    def head_end(offset: int) -> int:
        quote = None
        i = offset
        while i < len(data):
            c = data[i:i + 1]
            if quote:
                if c == quote:
                    quote = None
            elif c in (b"'", b'"'):
                quote = c
            elif c == b">":
                return i + 1
            i += 1
        return len(data)

    def start(tag: str, attrs: dict[str, str]) -> None:
        depth = len(stack)
        offset = parser.CurrentByteIndex
        if depth <= max_depth:
            spans.append(_Span(tag, depth, offset, head_end(offset), attrs=dict(attrs),
                               parent=stack[-1] if stack else -1))
            stack.append(len(spans) - 1)
        else:
            stack.append(-1)

    def end(tag: str) -> None:
        index = stack.pop()
        if index < 0:
            return
        span = spans[index]
        if data[span.head_end - 2:span.head_end] == b"/>":   # <tag .../>
            span.end = span.head_end
        else:
            span.end = head_end(parser.CurrentByteIndex)

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.ordered_attributes = False
    parser.Parse(data, True)
    return spans


def _line_start(data: bytes, offset: int) -> int:
    return data.rfind(b"\n", 0, offset) + 1


def _indent_of(data: bytes, offset: int) -> bytes:
    start = _line_start(data, offset)
    prefix = data[start:offset]
    return prefix if prefix.strip() == b"" else b""


def _quote(data: bytes) -> bytes:
    """The document's attribute quote: libvirt writes single quotes; nova double quotes."""
    return b'"' if data.count(b'="') > data.count(b"='") else b"'"


def _tag(name: str, attrs: list[tuple[str, str]], q: bytes) -> bytes:
    parts = [f"<{name}".encode()]
    for key, value in attrs:
        esc = value.replace("&", "&amp;").replace("<", "&lt;")
        esc = esc.replace("'", "&apos;") if q == b"'" else esc.replace('"', "&quot;")
        parts.append(b" " + key.encode() + b"=" + q + esc.encode() + q)
    return b"".join(parts) + b"/>"


def _memory_attrs(old: dict[str, str] | None, edit: NumatuneEdit, *,
                  vcpu_auto: bool = False) -> list[tuple[str, str]]:
    """The attributes of the new ``<memory>``.  *vcpu_auto*: ``<vcpu placement='auto'>``, under
    which a ``<memory>`` without placement and nodeset is placed automatically (numad)."""
    old = dict(old or {})
    mode = edit.mode or old.get("mode") or "strict"   # never leave strict implicit
    attrs: list[tuple[str, str]] = [("mode", mode)]
    nodeset = format_bitmap(edit.nodeset) if edit.nodeset is not None else old.get("nodeset")
    placement = old.get("placement")
    if placement == "auto" and edit.nodeset is not None:
        raise ParseError("placement 'auto' (numad) cannot take a nodeset: remove the placement "
                         "or leave the nodeset out", field="numatune/memory/@placement")
    if placement == "auto":
        # libvirt drops a nodeset given with placement='auto' (virDomainNumatuneSet) and the
        # schema rejects the combination: the rewritten element leaves it out.
        nodeset = None
    if placement is not None:
        attrs.append(("placement", placement))
    if nodeset is not None:
        attrs.append(("nodeset", nodeset))
    # Without placement and nodeset, placement follows <vcpu placement> (auto or static).
    auto = placement == "auto" or (placement is None and vcpu_auto)
    if nodeset is None and not auto:
        raise ParseError("a nodeset is needed (give --nodeset)", field="numatune/memory/@nodeset")
    known = {"mode", "placement", "nodeset"}
    attrs.extend((k, v) for k, v in old.items() if k not in known)  # keep unknown attributes
    return attrs


def _memnode_attrs(old: dict[str, str] | None, m: MemnodeEdit) -> list[tuple[str, str]]:
    attrs = [("cellid", str(m.cellid)), ("mode", m.mode), ("nodeset", format_bitmap(m.nodeset))]
    attrs.extend((k, v) for k, v in (old or {}).items() if k not in ("cellid", "mode", "nodeset"))
    return attrs


def edit_numatune(doc: DomainDocument, edit: NumatuneEdit) -> bytes:
    """The document's bytes with *edit* applied to ``<numatune>``; unchanged when empty."""
    data = doc.to_bytes()
    if edit.empty:
        return data
    _check(edit)
    try:
        spans = element_spans(data)
    except expat.ExpatError as exc:
        # libxml2 (lxml) read the document but expat does not: their tables of name
        # characters differ (XML 1.0 5th edition vs. 4th), e.g. U+FEFF inside a tag name
        raise ParseError(f"cannot locate the elements to edit ({expat.ErrorString(exc.code)})",
                         field="xml", path=doc.path, line=exc.lineno) from None
    root = spans[0]
    children = [s for s in spans if s.depth == 1]
    newline = b"\r\n" if b"\r\n" in data else b"\n"
    numatune = next((s for s in children if s.tag == "numatune"), None)
    # The attribute quote of the <numatune> being edited, else the document's.
    own = data[numatune.start:numatune.end] if numatune is not None else b""
    q = _quote(own) if (b"='" in own or b'="' in own) else _quote(data)
    unit = _indent_unit(data, spans)
    vcpu = next((s for s in children if s.tag == "vcpu"), None)
    vcpu_auto = vcpu is not None and (vcpu.attrs or {}).get("placement") == "auto"
    set_memory = edit.mode is not None or edit.nodeset is not None
    new_memnodes = sorted(edit.memnodes, key=lambda m: m.cellid)

    if numatune is None:
        return _add_numatune(data, edit, root, children, unit, newline, q, vcpu_auto=vcpu_auto)

    inner = [s for s in spans if s.depth == 2 and spans[s.parent] is numatune]
    indent = _indent_of(data, numatune.start)
    child_indent = _indent_of(data, inner[0].start) if inner else indent + unit
    replacements: list[tuple[int, int, bytes]] = []
    # New children by insertion offset, formatted with their line breaks, in the order libvirt
    # formats them (<memory> first, then the memnodes by cellid).
    inserts: dict[int, list[bytes]] = {}
    memory = next((s for s in inner if s.tag == "memory"), None)
    if set_memory:
        new = _tag("memory", _memory_attrs(memory.attrs if memory else None, edit,
                                           vcpu_auto=vcpu_auto), q)
        if memory is not None:
            replacements.append((memory.start, memory.end, new))
        else:
            inserts.setdefault(numatune.head_end, []).append(newline + child_indent + new)
    elif memory is not None and "mode" not in (memory.attrs or {}) and \
            memory.attrs and "nodeset" in memory.attrs:
        # an edit of the memnodes still writes the silent strict of <memory> out
        replacements.append((memory.start, memory.end,
                             _tag("memory", [("mode", "strict"), *memory.attrs.items()], q)))
    existing = {s.attrs.get("cellid"): s for s in inner if s.tag == "memnode" and s.attrs}
    # The memnodes in document order, with the highest cellid up to each: the first memnode
    # with a cellid above c is the first whose running maximum is above c (a bisection).
    memnode_spans = [s for s in inner if s.tag == "memnode"]
    highest = list(accumulate((_int_or((s.attrs or {}).get("cellid"), -1)
                               for s in memnode_spans), max))
    last_end = max(s.end for s in inner) if inner else numatune.head_end
    for m in new_memnodes:
        old = existing.get(str(m.cellid))
        new = _tag("memnode", _memnode_attrs(old.attrs if old else None, m), q)
        if old is not None:
            replacements.append((old.start, old.end, new))
            continue
        # Before the first memnode with a higher cellid, else after the last child element.
        later = bisect_right(highest, m.cellid)
        if later < len(memnode_spans):
            at = memnode_spans[later].start
            inserts.setdefault(at, []).append(new + newline + child_indent)
        else:
            inserts.setdefault(last_end, []).append(newline + child_indent + new)
    edited = {str(m.cellid) for m in edit.memnodes}
    for s in inner:
        if s.tag == "memnode" and s.attrs and "mode" not in s.attrs and \
                s.attrs.get("cellid") not in edited:
            replacements.append((s.start, s.end, _tag(
                "memnode", [("cellid", s.attrs.get("cellid", "")), ("mode", "strict"),
                            *((k, v) for k, v in s.attrs.items() if k != "cellid")], q)))
    if numatune.end == numatune.head_end:
        # <numatune/>: open it up; everything new goes inside.
        added = inserts.pop(numatune.head_end, [])
        head = data[numatune.start:numatune.head_end - 2].rstrip() + b">"
        replacements.append((numatune.start, numatune.end, head + b"".join(added) + newline
                             + indent + b"</numatune>"))
    for at, texts in inserts.items():
        text = b"".join(texts)
        if not inner:
            # nothing but text/comments inside: keep the end tag on its own line
            close = data.rfind(b"</", numatune.head_end, numatune.end)
            if b"\n" not in data[at:close]:
                text += newline + indent
        replacements.append((at, at, text))
    return _splice(data, replacements)


def _check(edit: NumatuneEdit) -> None:
    """Refuse an edit libvirt would refuse: an unknown mode, a negative or repeated cellid."""
    for mode in [edit.mode, *(m.mode for m in edit.memnodes)]:
        if mode is not None and mode not in MODES:
            raise ParseError(f"unknown mode {mode!r} ({', '.join(MODES)})", field="mode")
    given = Counter(m.cellid for m in edit.memnodes)
    for cellid in (m.cellid for m in edit.memnodes):
        if cellid < 0:
            raise ParseError(f"cellid {cellid} is negative", field="numatune/memnode/@cellid")
        if given[cellid] > 1:
            raise ParseError(f"memnode for cell {cellid} given twice",
                             field="numatune/memnode/@cellid")


def _add_numatune(data: bytes, edit: NumatuneEdit, root: _Span, children: list[_Span],
                  unit: bytes, newline: bytes, q: bytes, *, vcpu_auto: bool) -> bytes:
    """*data* with a new ``<numatune>`` holding *edit*: after the last child libvirt formats
    before it (:data:`BEFORE_NUMATUNE`), else first in ``<domain>``."""
    anchor = None
    for s in children:
        if s.tag in BEFORE_NUMATUNE:
            anchor = s
    if anchor is not None:
        indent = _indent_of(data, anchor.start)
        at = anchor.end
    else:
        indent = _indent_of(data, children[0].start) if children else unit
        at = root.head_end
    lines = [indent + b"<numatune>"]
    if edit.mode is not None or edit.nodeset is not None:
        lines.append(indent + unit + _tag("memory", _memory_attrs(None, edit,
                                                                  vcpu_auto=vcpu_auto), q))
    for m in sorted(edit.memnodes, key=lambda m: m.cellid):
        lines.append(indent + unit + _tag("memnode", _memnode_attrs(None, m), q))
    lines.append(indent + b"</numatune>")
    block = newline + newline.join(lines)
    return data[:at] + block + data[at:]


def _splice(data: bytes, replacements: list[tuple[int, int, bytes]]) -> bytes:
    """*data* with each (start, end, text) span replaced, in one pass: O(bytes), where one
    copy of the document per replacement was O(bytes × memnodes).

    Spans do not overlap; an insertion (start == end) at the start of a replaced span goes
    before the replacement, as applying the replacements last-offset-first put it."""
    out: list[bytes] = []
    pos = 0
    for start, end, text in sorted(replacements, key=lambda r: (r[0], r[0] != r[1])):
        assert start >= pos, "overlapping edits"
        out += (data[pos:start], text)
        pos = end
    out.append(data[pos:])
    return b"".join(out)


def _int_or(text: str | None, default: int) -> int:
    try:
        return int(text) if text is not None else default
    except ValueError:
        return default


def _indent_unit(data: bytes, spans: list[_Span]) -> bytes:
    """The step between a depth-1 element's indentation and the root's (two spaces usually)."""
    for s in spans:
        if s.depth == 1:
            ind = _indent_of(data, s.start)
            if ind:
                return ind
    return b"  "
