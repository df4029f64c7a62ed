"""DomainDocument: a libvirt domain XML kept byte-for-byte.

The original bytes are the source of truth.  lxml gives the tree that :mod:`extract` reads (with
line numbers for error messages); an edit replaces only the bytes of the element it changes, so a
document with no edit serialises to exactly the bytes it was read from, and an edited one keeps
every other byte (comments, attribute quoting, foreign namespaces such as nova's metadata,
unknown elements, white space).  lxml cannot do that by itself: it rewrites libvirt's single
quoted attributes with double quotes and normalises white space inside tags.
"""

from __future__ import annotations

from lxml import etree

from numaguard.domxml.safexml import parse_xml
from numaguard.errors import ParseError


class DomainDocument:
    """A parsed domain XML.  ``root`` is the ``<domain>`` element; ``path`` names the source."""

    __slots__ = ("_data", "path", "root", "tree")

    def __init__(self, data: bytes, *, path: str | None = None) -> None:
        self._data = data
        self.path = path
        self.tree = parse_xml(data, path=path)
        self.root = self.tree.getroot()
        if self.root.tag != "domain":
            raise ParseError(
                f"not a libvirt domain XML: the root element is <{_name(self.root)}>, "
                "not <domain>", field="domain", path=path, line=self.root.sourceline)

    def to_bytes(self) -> bytes:
        """The document as bytes: identical to the input while nothing was edited."""
        return self._data


def _name(el: etree._Element) -> str:
    tag = el.tag if isinstance(el.tag, str) else "?"
    return etree.QName(tag).localname if tag.startswith("{") else tag
