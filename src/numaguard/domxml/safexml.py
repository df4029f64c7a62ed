"""Hardened XML parsing shared by every libvirt document numaguard reads.

Entities are never resolved, nothing is fetched from the network, and a document that declares a
DTD or entities is refused outright: libvirt never writes one, and an internal subset is how
entity bombs ("billion laughs") and external-entity reads get in.
"""

from __future__ import annotations

import re

from lxml import etree

from numaguard.errors import ParseError

_DECL = re.compile(rb"<!(DOCTYPE|ENTITY)", re.IGNORECASE)


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_blank_text=False,
        remove_comments=False,
        remove_pis=False,
        strip_cdata=False,
        collect_ids=False,
    )


def parse_xml(data: bytes, *, path: str | None = None) -> etree._ElementTree:
    """Parse *data* safely; every failure is a :class:`ParseError` naming path and line."""
    m = _DECL.search(data)
    if m is not None:
        line = data.count(b"\n", 0, m.start()) + 1
        raise ParseError(
            "DOCTYPE/ENTITY declarations are not allowed (libvirt never writes them; "
            "refusing a possible entity bomb)", field="xml", path=path, line=line)
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        err_line = exc.lineno if exc.lineno else None
        msg = exc.msg or str(exc)
        # lxml appends ", line N, column M" to its messages; the line is reported separately.
        msg = re.sub(r",? line \d+, column \d+$", "", msg)
        raise ParseError(f"malformed XML: {msg}", field="xml", path=path,
                         line=err_line) from None
    return root.getroottree()
