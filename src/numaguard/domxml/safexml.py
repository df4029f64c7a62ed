"""Hardened XML parsing shared by every libvirt document numaguard reads.

libvirt writes its documents in UTF-8 with no DTD (``virXMLSaveFile``, ``virDomainDefFormat``),
so anything else is refused before libxml2 sees it, and libxml2 is configured so that nothing
can be loaded from anywhere even if a check were wrong:

1. **Encoding.**  The document must be UTF-8 (or its ASCII subset): a UTF-16/UTF-32 byte-order
   mark, NUL bytes (UTF-16 without a mark, or binary data), an XML declaration naming another
   encoding, or bytes that do not decode as UTF-8 are refused, each with a message saying so.
   Deciding this first matters: a DTD check over the raw bytes of a UTF-16 file sees ``<\\0!\\0D``
   and never matches.
2. **No DTD.**  On the now known UTF-8 bytes, a ``<!DOCTYPE`` or ``<!ENTITY`` anywhere is refused:
   an internal subset is how entity bombs ("billion laughs") and external-entity reads
   (``<!ENTITY % p SYSTEM "file:///etc/shadow"> %p;``) get in.
3. **Nothing loaded.**  The parser never resolves entities, never uses the network, and has a
   resolver that refuses every external load (DTD, external subset, parameter entity) — libxml2
   otherwise reads local files for external parameter entities even with ``load_dtd=False``
   (seen with lxml 6.1 / libxml2 2.14 and ``collect_ids=False``).  After parsing, a document
   that still carries a DTD (libxml2's own view: ``docinfo.internalDTD``) is refused.

Depth is capped by libxml2 itself (256 levels without ``huge_tree``).
"""

from __future__ import annotations

import re

from lxml import etree

from numaguard.errors import ParseError

_DECL = re.compile(rb"<!(DOCTYPE|ENTITY)", re.IGNORECASE)
_XML_DECL_ENCODING = re.compile(
    rb"\A(?:\xef\xbb\xbf)?\s*<\?xml\s[^>]*?\bencoding\s*=\s*[\"']([^\"']*)[\"']")
_UTF8_NAMES = {"utf-8", "utf8", "us-ascii", "ascii"}
_BOMS = ((b"\x00\x00\xfe\xff", "UTF-32"), (b"\xff\xfe\x00\x00", "UTF-32"),
         (b"\xfe\xff", "UTF-16"), (b"\xff\xfe", "UTF-16"))
_BOM_STARTS = (b"\x00", b"\xfe", b"\xff")


class _RefuseExternal(etree.Resolver):
    """Every external load (DTD, subset, entity, XInclude) is refused."""

    def resolve(self, system_url: str | None, public_id: str | None,
                context: object) -> None:
        raise _ExternalLoad(system_url)


class _ExternalLoad(etree.LxmlError):
    def __init__(self, url: str | None) -> None:
        super().__init__(url)
        self.url = url


def _parser() -> etree.XMLParser:
    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        attribute_defaults=False,
        huge_tree=False,
        remove_blank_text=False,
        remove_comments=False,
        remove_pis=False,
        strip_cdata=False,
    )
    parser.resolvers.add(_RefuseExternal())
    return parser


_PARSER = _parser()


def _fail(reason: str, path: str | None, line: int | None = None) -> ParseError:
    return ParseError(reason, field="xml", path=path, line=line)


def check_utf8_xml(data: bytes, *, path: str | None = None) -> None:
    """Refuse a document that is not UTF-8 or that declares a DTD (see the module docstring)."""
    if data.startswith(_BOM_STARTS):
        for bom, name in _BOMS:
            if data.startswith(bom):
                raise _fail(f"encoded as {name} (byte-order mark); libvirt reads and writes "
                            f"UTF-8 (convert it: iconv -f {name} -t UTF-8)", path, 1)
    nul = data.find(b"\x00")
    if nul >= 0:
        raise _fail(f"NUL byte at offset {nul}: not UTF-8 XML (UTF-16 without a byte-order "
                    "mark, or binary data)", path, data.count(b"\n", 0, nul) + 1)
    m = _XML_DECL_ENCODING.match(data)
    if m is not None:
        declared = m.group(1).decode("ascii", errors="replace")
        if declared.strip().lower() not in _UTF8_NAMES:
            raise _fail(f"declares encoding {declared!r}; libvirt reads and writes UTF-8 "
                        f"(convert it: iconv -f {declared} -t UTF-8)", path, 1)
    if not data.isascii():  # ASCII is UTF-8: no need to decode it
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _fail(f"not UTF-8 (byte {exc.start})", path,
                        data.count(b"\n", 0, exc.start) + 1) from None
    m2 = _DECL.search(data)
    if m2 is not None:
        raise _fail("DOCTYPE/ENTITY declarations are not allowed (libvirt never writes them; "
                    "refusing a possible entity bomb or external entity)", path,
                    data.count(b"\n", 0, m2.start()) + 1)


def parse_xml(data: bytes, *, path: str | None = None) -> etree._ElementTree:
    """Parse *data* safely; every failure is a :class:`ParseError` naming path and line."""
    check_utf8_xml(data, path=path)
    try:
        root = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as exc:
        err_line = exc.lineno if exc.lineno else None
        msg = exc.msg or str(exc)
        # lxml appends ", line N, column M" to its messages; the line is reported separately.
        msg = re.sub(r",? line \d+, column \d+$", "", msg)
        raise _fail(f"malformed XML: {msg}", path, err_line) from None
    except _ExternalLoad as exc:
        raise _fail(f"refers to an external resource ({exc.url!r}); refusing to load it",
                    path) from None
    except etree.LxmlError as exc:
        raise _fail(f"malformed XML: {exc}", path) from None
    tree = root.getroottree()
    if tree.docinfo.internalDTD is not None or tree.docinfo.externalDTD is not None:
        raise _fail("DOCTYPE declarations are not allowed (libvirt never writes them)", path)
    return tree
