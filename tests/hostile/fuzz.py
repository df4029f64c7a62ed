"""A seeded mutation fuzzer over everything a hypervisor can hand numaguard.

Corpus (files of this repository): domain XMLs (examples/article-host/domains,
tests/fixtures/xml/**), captured sysfs/proc trees (tests/fixtures/sys/*,
tests/fixtures/readers/sys-sparse, examples/article-host/host), ``numactl -H`` texts,
``virsh capabilities`` XMLs (tests/fixtures/capabilities) and simulate scenarios
(examples/scenarios, tests/oracle/scenarios).

Each *case* copies one seed into a fresh folder, mutates it (one file of a tree) with one to
three mutators drawn from ``random.Random(seed)``, and runs every read-only command that takes
that kind of input (:func:`build_case`).  Each run is judged by :func:`judge`:

- ``traceback``: "Traceback" anywhere in the output;
- ``timeout``: still running after the timeout (a hang);
- ``crash``: killed by a signal (not by the timeout);
- ``exit-code``: an exit code outside the documented set (0, 1 where findings or an OOM kill
  mean 1, 2 for bad input);
- ``stderr-format``: exit 2 with an empty stderr or a line not starting ``numaguard <cmd>: ``;
- ``silent-drop``: success, but an input the command was given is not accounted for (a domain
  file that is not among the guests, a node missing from the topology, a scenario step
  missing from the result);
- ``bad-output``: success with no output, or ``--format json`` output that is not JSON;
- ``leak``: the content of a file that an entity names (a canary) in any output;
- ``raw-control``: an ESC, CSI, C0/C1 control or bidi override reaching a terminal report
  (text/Markdown output or stderr; not ``--xml`` nor JSON, which are for machines).

``python -m tests.hostile.fuzz --inputs 20000 --findings /tmp/fuzz-findings`` runs it outside
pytest and saves one minimised reproducer per distinct failure.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import importlib
import json
import os
import pathlib
import pkgutil
import random
import re
import shlex
import shutil
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from tests.hostile.harness import GiB, Outcome, run_cli, run_many

ROOT = pathlib.Path(__file__).resolve().parents[2]
ARTICLE = ROOT / "examples" / "article-host"
ARTICLE_HOST = ARTICLE / "host"
ARTICLE_VM1 = ARTICLE / "domains" / "vm1.xml"

CANARY = "NUMAGUARD-CANARY-7f3a9c2e51"   # the content of the file hostile entities name

# -- the corpus ----------------------------------------------------------------------------

KINDS = ("domain", "snapshot", "sysfs", "numactl", "caps", "toml")
# share of the cases per kind (sums to 1)
KIND_WEIGHTS = {"domain": 0.34, "snapshot": 0.10, "sysfs": 0.18, "numactl": 0.12,
                "caps": 0.12, "toml": 0.14}


@dataclasses.dataclass(frozen=True)
class Seed:
    kind: str
    path: pathlib.Path   # a file, or the root of a tree (sysfs)
    files: tuple[str, ...] = ()   # sysfs: the tree's files, relative to path

    @property
    def name(self) -> str:
        return self.path.stem if self.path.is_file() else self.path.name


def _tree_files(root: pathlib.Path) -> tuple[str, ...]:
    out = []
    for sub in ("sys", "proc"):
        for p in sorted((root / sub).rglob("*")):
            if p.is_file():
                out.append(str(p.relative_to(root)))
    return tuple(out)


def load_corpus(root: pathlib.Path = ROOT) -> dict[str, list[Seed]]:
    """Every seed of the repository, by kind."""
    corpus: dict[str, list[Seed]] = {k: [] for k in KINDS}
    domains = sorted((root / "examples" / "article-host" / "domains").glob("*.xml"))
    domains += sorted((root / "tests" / "fixtures" / "xml").rglob("*.xml"))
    corpus["domain"] = [Seed("domain", p) for p in domains]
    corpus["snapshot"] = [Seed("snapshot", p) for p in
                          sorted((root / "examples" / "article-host" / "domains").glob("*.xml"))]
    trees = [p.parent for p in sorted((root / "tests" / "fixtures").rglob("sys"))
             if (p / "devices" / "system" / "node").is_dir()]
    trees.append(root / "examples" / "article-host" / "host")
    corpus["sysfs"] = [Seed("sysfs", t, _tree_files(t)) for t in trees]
    numactl = sorted((root / "tests" / "fixtures" / "sys").glob("*/numactl-H.txt"))
    numactl += sorted((root / "tests" / "fixtures" / "readers" / "numactl").glob("*.txt"))
    corpus["numactl"] = [Seed("numactl", p) for p in numactl]
    corpus["caps"] = [Seed("caps", p) for p in
                      sorted((root / "tests" / "fixtures" / "capabilities").glob("*.xml"))]
    tomls = sorted((root / "examples" / "scenarios").glob("*.toml"))
    tomls += sorted((root / "tests" / "oracle" / "scenarios").glob("*.toml"))
    corpus["toml"] = [Seed("toml", p) for p in tomls]
    return corpus


# -- hostile values ------------------------------------------------------------------------

HUGE = "9" * 5000
NUMBERS = ["0", "-1", "-0", "1", "2", "7", "255", "1023", "1024", "16383", "16384",
           "4294967295", "4294967296", "18446744073709551615", "18446744073709551616",
           "9223372036854775808", "1" + "0" * 4300, HUGE, "-" + HUGE, "1e9", "0x10", "1.5",
           "nan", "inf", "+1", " 1", "007", "1_000", "\u0661\u0662", "\uff11\uff12", ""]
CPUSETS = ["0-16383", "0-16384", "0-4294967295", "0-1023", "1024", "^0", "0-3,^0-3", "3-0",
           ",", "0-", "-1", "0--1", "0,,1", " 0 - 1 ", "0-" + HUGE, "0-3," * 2000 + "0",
           "0-1,^1-0", "\u0660-\u0663", "", "all"]
UNITS = ["KiB", "b", "bytes", "EiB", "ZiB", "YiB", "k", "T", "KB", "PB", "E", "foo", ""]
SIZES = ["1EiB", "16EiB", "1ZiB", "-1GiB", "0", "1.5GiB", "1e30", "nan GiB", "inf",
         "18446744073709551616", "64PiB", "1 KB", HUGE, HUGE + "GiB", "0.0000001KiB", "GiB",
         "-0", "1" * 30 + "EiB"]
WORDS = ["strict", "preferred", "interleave", "restrictive", "bind", "default", "auto",
         "static", "alloc", "free", "STRICT", "bogus", "", "\x00"]
# control and bidi characters that must never reach a terminal raw
CONTROLS = ["\u202e", "\u2066", "\u2067", "\u2068", "\u202d", "\x1b[31m", "\x1b]0;pwned\x07",
            "\x9b2J", "\x85", "\u2028", "\r", "\n", "\x7f", "\x08", "\x07", "\ufeff",
            "\x1b[2K\r"]
TOML_VALUES = ["true", "1.5", "[1, 2]", "{a = 1}", "1979-05-27T07:32:00Z", "'x'", '""', "-1",
               "0", HUGE, "-" + HUGE, "inf", "nan", "[]", "{}", '"1EiB"', '"0-16383"',
               '"' + HUGE + '"', '"\\u202e"', '"\\u001b[31m"']
RAW_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _value_for(key: str, rng: random.Random) -> str:
    """A hostile value suited to an attribute/element/key named *key*."""
    k = key.lower()
    if k in ("cpuset", "nodeset", "cpus", "nodes", "cpuset_mems", "siblings", "cpulist",
             "online", "possible", "has_cpu", "has_memory", "has_normal_memory"):
        pool = CPUSETS
    elif k == "unit":
        pool = UNITS
    elif k in ("mode", "placement", "policy", "action", "memaccess", "type"):
        pool = WORDS
    elif k in ("size", "mem_total", "mem_free", "swap", "reclaimable", "watermark_min",
               "watermark_low"):
        pool = SIZES
    elif k in ("name", "title", "description"):
        return rng.choice(["vm", "a" * rng.choice([1, 300, 100000]), ""]) + rng.choice(
            CONTROLS) + rng.choice(["x", ""])
    else:
        pool = NUMBERS
    return rng.choice(pool)


# -- byte and text mutators ----------------------------------------------------------------
# Each takes (rng, data, ctx) and returns new bytes.  ctx: the seed's kind and, for XML,
# whether it still is text we can edit (an earlier re-encoding makes regex edits pointless).

Mutator = Callable[[random.Random, bytes, dict[str, Any]], bytes]
INSERTS = [b"<", b">", b"&", b"'", b'"', b"\x00", b"\n", b"\r\n", b"9" * 40, b"-", b",", b"^",
           b"\xff\xfe", b"\xc3\x28", b"\xe2\x80\xae", b"]]>", b"<!--", b"-->", b"=", b"[",
           b"]", b"{", b"}", b"#", b"\\", b"\t", b" ", b"\x1b[31m", "\u202e".encode()]


def m_flip(rng: random.Random, data: bytes, ctx: dict[str, Any]) -> bytes:
    if not data:
        return bytes([rng.randrange(256)])
    b = bytearray(data)
    for _ in range(rng.choice([1, 1, 2, 4, 16])):
        i = rng.randrange(len(b))
        b[i] ^= 1 << rng.randrange(8)
    return bytes(b)


def m_first_byte(rng: random.Random, data: bytes, ctx: dict[str, Any]) -> bytes:
    """The first non-blank byte changed (the '<' of a document)."""
    i = len(data) - len(data.lstrip())
    if i >= len(data):
        return data + b"?"
    return data[:i] + bytes([data[i] ^ (1 << rng.randrange(8))]) + data[i + 1:]


def m_insert(rng: random.Random, data: bytes, ctx: dict[str, Any]) -> bytes:
    i = rng.randrange(len(data) + 1)
    what = rng.choice(INSERTS) if rng.random() < 0.8 else bytes(
        rng.randrange(256) for _ in range(rng.randrange(1, 9)))
    return data[:i] + what * rng.choice([1, 1, 3, 100]) + data[i:]


def m_delete(rng: random.Random, data: bytes, ctx: dict[str, Any]) -> bytes:
    if not data:
        return data
    i = rng.randrange(len(data))
    j = min(len(data), i + rng.choice([1, 2, 8, 64, 512]))
    return data[:i] + data[j:]


def m_duplicate(rng: random.Random, data: bytes, ctx: dict[str, Any]) -> bytes:
    if not data:
        return data
    i = rng.randrange(len(data))
    j = min(len(data), i + rng.choice([1, 16, 256, 4096]))
    return data[:j] + data[i:j] * rng.choice([1, 2, 10]) + data[j:]


def m_truncate(rng: random.Random, data: bytes, ctx: dict[str, Any]) -> bytes:
    return data[:rng.randrange(len(data) + 1)] if data else data


def m_empty(rng: random.Random, data: bytes, ctx: dict[str, Any]) -> bytes:
    return rng.choice([b"", b"\n", b"   \n", b"\x00", b"\xef\xbb\xbf"])


def m_lines(rng: random.Random, data: bytes, ctx: dict[str, Any]) -> bytes:
    """Splice lines: swap two, duplicate one (up to 10,000 times), delete one, or splice in a
    line of another seed of the same kind."""
    lines = data.splitlines(keepends=True)
    if not lines:
        return data
    op = rng.randrange(4)
    i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
    if op == 0:
        lines[i], lines[j] = lines[j], lines[i]
    elif op == 1:
        lines[i:i] = [lines[i]] * rng.choice([1, 2, 50, 10000])
    elif op == 2:
        del lines[i]
    else:
        other = ctx.get("donor") or data
        donor = other.splitlines(keepends=True) or [b"\n"]
        lines.insert(i, rng.choice(donor))
    return b"".join(lines)


_DIGITS = re.compile(rb"[0-9]+")


def m_number(rng: random.Random, data: bytes, ctx: dict[str, Any]) -> bytes:
    """A run of digits replaced by a hostile number (5,000 digits, negative, 2^64, ...)."""
    spans = [m.span() for m in _DIGITS.finditer(data)]
    if not spans:
        return m_insert(rng, data, ctx)
    for _ in range(rng.choice([1, 1, 1, 3])):
        i, j = rng.choice(spans)
        if j > len(data):
            break
        data = data[:i] + rng.choice(NUMBERS).encode() + data[j:]
        spans = [m.span() for m in _DIGITS.finditer(data)] or [(0, 0)]
    return data


def m_nul(rng: random.Random, data: bytes, ctx: dict[str, Any]) -> bytes:
    i = rng.randrange(len(data) + 1)
    return data[:i] + b"\x00" * rng.choice([1, 1, 4096]) + data[i:]


def m_control(rng: random.Random, data: bytes, ctx: dict[str, Any]) -> bytes:
    """A control or bidi character where a name is (or anywhere, for non-XML)."""
    char = rng.choice(CONTROLS).encode()
    names = [m.span(1) for m in re.finditer(rb"<name>([^<]*)</name>|name\s*=\s*\"([^\"]*)\"",
                                           data)]
    names = [s for s in names if s[0] >= 0]
    if names and rng.random() < 0.8:
        i, j = rng.choice(names)
        k = rng.randint(i, j)
        return data[:k] + char + data[k:]
    i = rng.randrange(len(data) + 1)
    return data[:i] + char + data[i:]


_XML_DECL = re.compile(rb"^\s*<\?xml[^>]*\?>\s*")


def _declared(data: bytes, encoding: str | None) -> bytes:
    body = _XML_DECL.sub(b"", data)
    if encoding is None:
        return body
    return f"<?xml version='1.0' encoding='{encoding}'?>\n".encode() + body


def m_reencode(rng: random.Random, data: bytes, ctx: dict[str, Any]) -> bytes:
    """UTF-16 (LE/BE, with/without BOM, declared or not), UTF-32, UTF-8 with BOM, or Latin-1."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    choice = rng.choice(["utf-16", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "bom8",
                         "latin-1"])
    declare = rng.random() < 0.6
    if choice == "bom8":
        return b"\xef\xbb\xbf" + data
    if choice == "latin-1":
        raw = _declared(text.encode("latin-1", "replace"), "ISO-8859-1" if declare else None)
        return raw
    enc_name = {"utf-16": "UTF-16", "utf-16-le": "UTF-16LE", "utf-16-be": "UTF-16BE",
                "utf-32": "UTF-32"}[choice]
    if ctx.get("xml"):
        text = _declared(text.encode("utf-8"), enc_name if declare else None).decode("utf-8")
    raw = text.encode(choice)
    if choice in ("utf-16-le", "utf-16-be") and rng.random() < 0.5:
        raw = ("\ufeff".encode(choice)) + raw
    ctx["encoded"] = True
    return raw


def _prologues(ctx: dict[str, Any]) -> list[str]:
    canary = ctx.get("canary", "/nonexistent")
    fifo = ctx.get("fifo", "/nonexistent")
    root = ctx.get("root_tag", "domain")
    return [
        f"<!DOCTYPE {root}>",
        f'<!DOCTYPE {root} SYSTEM "file://{canary}">',
        f'<!DOCTYPE {root} [<!ENTITY e SYSTEM "file://{canary}">]>',
        f'<!DOCTYPE {root} [<!ENTITY % p SYSTEM "file://{canary}"> %p;]>',
        f'<!DOCTYPE {root} [<!ENTITY % p SYSTEM "file://{fifo}"> %p;]>',
        f'<!DOCTYPE {root} [<!ENTITY e SYSTEM "file://{fifo}">]>',
        (f'<!DOCTYPE {root} [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;'
         f'&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY e "&c;&c;&c;&c;&c;&c;'
         f'&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">]>'),
        f'<!DOCTYPE {root} PUBLIC "-//x//y" "http://127.0.0.1:9/x.dtd">',
        f'<!DOCTYPE {root} [<!ELEMENT {root} ANY><!ATTLIST {root} type CDATA "kvm">]>',
    ]


def m_prologue(rng: random.Random, data: bytes, ctx: dict[str, Any]) -> bytes:
    """A DOCTYPE/ENTITY prologue (internal subset, external subset, parameter entities from a
    canary file or a FIFO, an entity bomb), with &e; used in the first text node."""
    prologue = rng.choice(_prologues(ctx)).encode()
    m = _XML_DECL.match(data)
    head, body = (data[:m.end()], data[m.end():]) if m else (b"", data)
    if b"ENTITY e " in prologue:
        body = re.sub(rb">([^<\s][^<]*)<", rb">&e;\1<", body, count=1)
    return head + prologue + b"\n" + body


def m_entity_ref(rng: random.Random, data: bytes, ctx: dict[str, Any]) -> bytes:
    """An undefined entity or a bad character reference in a text node."""
    ref = rng.choice([b"&e;", b"&#0;", b"&#x1b;", b"&#xD800;", b"&#1114112;", b"&#x202e;",
                      b"&#10;", b"&amp", b"&lt;&gt;", b"&#" + HUGE.encode() + b";"])
    spans = [m.start(1) for m in re.finditer(rb">([^<]+)<", data)]
    i = rng.choice(spans) if spans else rng.randrange(len(data) + 1)
    return data[:i] + ref + data[i:]


def m_nesting(rng: random.Random, data: bytes, ctx: dict[str, Any]) -> bytes:
    """Deep nesting: elements (XML) or arrays/inline tables (TOML)."""
    depth = rng.choice([100, 300, 3000, 100000])
    if ctx.get("kind") == "toml":
        if rng.random() < 0.5:
            line = "deep = " + "[" * depth + "]" * depth + "\n"
        else:
            line = "deep = " + "{a = " * depth + "1" + "}" * depth + "\n"
        lines = data.splitlines(keepends=True)
        lines.insert(rng.randrange(len(lines) + 1), line.encode())
        return b"".join(lines)
    tags = [m.end() for m in re.finditer(rb"<[A-Za-z][^>]*[^/]>", data)]
    i = rng.choice(tags) if tags else rng.randrange(len(data) + 1)
    tag = rng.choice([b"a", b"numatune", b"cell"])
    return data[:i] + (b"<" + tag + b">") * depth + (b"</" + tag + b">") * depth + data[i:]


# (the look-behind keeps the scan linear over long runs of letters, such as a long comment)
_ATTR = re.compile(rb"(?<=\s)([A-Za-z_][\w.:-]*)=(['\"])([^'\"]*)\2")
_ELEMENT_TEXT = re.compile(rb"<([A-Za-z_][\w.:-]*)([^>]*)>([^<]*)</\1>")


def m_xml_value(rng: random.Random, data: bytes, ctx: dict[str, Any]) -> bytes:
    """An attribute value or element text replaced by a hostile value fit for its name."""
    attrs = list(_ATTR.finditer(data))
    texts = list(_ELEMENT_TEXT.finditer(data))
    if not attrs and not texts:
        return m_number(rng, data, ctx)
    for _ in range(rng.choice([1, 1, 2, 4])):
        attrs = list(_ATTR.finditer(data))
        texts = list(_ELEMENT_TEXT.finditer(data))
        if attrs and (not texts or rng.random() < 0.6):
            m = rng.choice(attrs)
            value = _value_for(m.group(1).decode("utf-8", "replace"), rng)
            value = value.replace("'", "&apos;").replace('"', "&quot;").replace("<", "&lt;")
            i, j = m.span(3)
        elif texts:
            m = rng.choice(texts)
            value = _value_for(m.group(1).decode("utf-8", "replace"), rng).replace("<", "&lt;")
            i, j = m.span(3)
        else:
            break
        data = data[:i] + value.encode("utf-8", "surrogatepass") + data[j:]
    return data


_EMPTY_ELEMENT = re.compile(rb"<([A-Za-z_][\w.:-]*)(?:\s[^<>]*)?/>\n?")
_FULL_ELEMENT = re.compile(rb"<([A-Za-z_][\w.:-]*)(?:\s[^<>]*)?>[^<]*</\1>\n?")


def m_xml_repeat(rng: random.Random, data: bytes, ctx: dict[str, Any]) -> bytes:
    """An element repeated (up to 10,000 times: <vcpupin>, <cell>, <sibling> ...) or removed;
    sometimes with its values made large (cpuset='0-16383')."""
    elements = list(_EMPTY_ELEMENT.finditer(data)) + list(_FULL_ELEMENT.finditer(data))
    if not elements:
        return m_duplicate(rng, data, ctx)
    m = rng.choice(elements)
    chunk = m.group(0)
    if rng.random() < 0.2:
        return data[:m.start()] + data[m.end():]
    if rng.random() < 0.3:
        chunk = re.sub(rb"(cpuset|nodeset|siblings)=(['\"])[^'\"]*\2", rb"\1='0-16383'", chunk)
    if rng.random() < 0.3:   # distinct ids
        count = rng.choice([2, 64, 1024, 1100])
        parts = [re.sub(rb"\b(id|vcpu|cellid)=(['\"])[0-9]+\2",
                        f"\\1='{k}'".encode(), chunk) for k in range(count)]
        return data[:m.end()] + b"".join(parts) + data[m.end():]
    return data[:m.end()] + chunk * rng.choice([1, 2, 100, 10000]) + data[m.end():]


def m_xml_wrap(rng: random.Random, data: bytes, ctx: dict[str, Any]) -> bytes:
    """Comments, CDATA, processing instructions, a second root, or only comments."""
    op = rng.randrange(5)
    if op == 0:
        return b"<!-- " + b"x" * rng.choice([1, 70000]) + b" -->\n" + data
    if op == 1:
        return b"<!-- only a comment -->\n"
    if op == 2:
        return data + rng.choice([b"<domain/>", b"<capabilities/>", b"trailing", b"<?pi x?>"])
    if op == 3:
        i = data.find(b">") + 1
        return data[:i] + b"<![CDATA[<name>x</name>]]>" + data[i:]
    return data.replace(b"<", b"<x:", 1) if rng.random() < 0.5 else data.replace(
        b">", b" xmlns='urn:x'>", 1)


_TOML_KV = re.compile(rb"^([ \t]*)([A-Za-z_][\w-]*)([ \t]*=[ \t]*)(.*?)[ \t]*(#.*)?$", re.MULTILINE)


def m_toml_value(rng: random.Random, data: bytes, ctx: dict[str, Any]) -> bytes:
    """A TOML value replaced: a hostile string for its key, or a value of the wrong type."""
    kvs = list(_TOML_KV.finditer(data))
    if not kvs:
        return m_number(rng, data, ctx)
    for _ in range(rng.choice([1, 1, 2])):
        kvs = list(_TOML_KV.finditer(data)) or kvs
        m = rng.choice(kvs)
        key = m.group(2).decode()
        # a TOML basic string, or a value of another type
        value = json.dumps(_value_for(key, rng)) if rng.random() < 0.5 else rng.choice(TOML_VALUES)
        i, j = m.span(4)
        data = data[:i] + value.encode("utf-8", "surrogatepass") + data[j:]
    return data


_TOML_TABLE = re.compile(rb"^\[\[(step|host\.nodes)\]\]\n(?:(?!\[).*\n?)*", re.MULTILINE)


def m_toml_tables(rng: random.Random, data: bytes, ctx: dict[str, Any]) -> bytes:
    """An array-of-tables entry ([[step]] or [[host.nodes]]) repeated (up to 1,100 nodes or
    10,000 steps), removed, or given a new key."""
    tables = list(_TOML_TABLE.finditer(data))
    if not tables:
        return m_lines(rng, data, ctx)
    m = rng.choice(tables)
    chunk = m.group(0)
    if not chunk.endswith(b"\n"):
        chunk += b"\n"
    op = rng.randrange(4)
    if op == 0:
        return data[:m.start()] + data[m.end():]
    if op == 1:
        extra = rng.choice([b"unknown_key = 1\n", b"name = \"x\"\n", b"id = 0\n",
                            b"size = \"1EiB\"\n", b"[step.sub]\nx = 1\n"])
        return data[:m.end()] + extra + data[m.end():]
    count = rng.choice([2, 100, 1024, 1100, 10000])
    if m.group(1) == b"host.nodes":
        count = min(count, 1100)
        parts = [re.sub(rb"(?m)^id\s*=\s*[0-9]+", f"id = {k}".encode(), chunk)
                 for k in range(count)]
        return data[:m.start()] + b"".join(parts) + data[m.end():]
    return data[:m.end()] + chunk * count + data[m.end():]


BYTE_MUTATORS: dict[str, Mutator] = {
    "flip": m_flip, "first-byte": m_first_byte, "insert": m_insert, "delete": m_delete,
    "duplicate": m_duplicate, "truncate": m_truncate, "empty": m_empty, "lines": m_lines,
    "number": m_number, "nul": m_nul, "control": m_control,
}
XML_MUTATORS: dict[str, Mutator] = {
    "reencode": m_reencode, "prologue": m_prologue, "entity-ref": m_entity_ref,
    "nesting": m_nesting, "xml-value": m_xml_value, "xml-repeat": m_xml_repeat,
    "xml-wrap": m_xml_wrap,
}
TOML_MUTATORS: dict[str, Mutator] = {
    "toml-value": m_toml_value, "toml-tables": m_toml_tables, "nesting": m_nesting,
}


def mutator_table(kind: str) -> list[tuple[str, Mutator, float]]:
    """(name, mutator, weight) for a kind of input."""
    table = [(n, f, 1.0) for n, f in BYTE_MUTATORS.items()]
    table = [(n, f, 0.3 if n in ("empty", "truncate", "first-byte") else w)
             for n, f, w in table]
    if kind in ("domain", "snapshot", "caps"):
        table += [(n, f, 2.5 if n in ("xml-value", "xml-repeat") else 1.0)
                  for n, f in XML_MUTATORS.items()]
    elif kind == "toml":
        table += [(n, f, 3.0 if n == "toml-value" else 1.2) for n, f in TOML_MUTATORS.items()]
    elif kind == "numactl":
        table += [("number", m_number, 3.0), ("reencode", m_reencode, 0.3)]
    elif kind == "sysfs":
        table += [("number", m_number, 4.0)]
    return table


def mutate(rng: random.Random, data: bytes, kind: str, ctx: dict[str, Any]) -> tuple[
        bytes, list[str]]:
    """One to three mutators applied in turn; returns the bytes and the mutators' names."""
    table = mutator_table(kind)
    names = [n for n, _, _ in table]
    weights = [w for _, _, w in table]
    funcs = {n: f for n, f, _ in table}
    applied: list[str] = []
    ctx.setdefault("xml", kind in ("domain", "snapshot", "caps"))
    ctx.setdefault("kind", kind)
    for _ in range(rng.choice([1, 1, 1, 2, 2, 3])):
        name = rng.choices(names, weights)[0]
        if ctx.get("encoded") and name not in BYTE_MUTATORS:
            continue   # text-aware edits on UTF-16 bytes would only be byte noise
        data = funcs[name](rng, data, ctx)
        applied.append(name)
    if not applied:
        applied.append("none")
    return data, applied


# -- tree mutations (a sysfs/proc file that is not a regular file) ------------------------

def tree_mutation(rng: random.Random, path: pathlib.Path) -> str | None:
    """Sometimes replace *path* by a FIFO, a link to /dev/zero, a folder, a dangling link, or
    delete it; returns the mutation's name or None (then the content is mutated instead)."""
    r = rng.random()
    if r > 0.08:
        return None
    path.unlink()
    op = rng.choice(["fifo", "devzero", "dir", "dangling", "missing", "big"])
    if op == "fifo":
        os.mkfifo(path)
    elif op == "devzero":
        path.symlink_to("/dev/zero")
    elif op == "dir":
        path.mkdir()
    elif op == "dangling":
        path.symlink_to(path.parent / "no-such-file")
    elif op == "big":
        with open(path, "wb") as f:
            f.write(b"0 " * (9 * 1024 * 1024))
    return f"tree-{op}"


# -- cases and probes ----------------------------------------------------------------------

@dataclasses.dataclass
class Expect:
    """What a successful run must account for."""

    guests: int | None = None            # the number of guests (JSON)
    guest_source: str | None = None      # guests: the one guest's source file
    node_ids: frozenset[int] | None = None   # topology: exactly these nodes
    node_ids_within: frozenset[int] | None = None   # topology: a non-empty subset of these
    node_ids_include: frozenset[int] = frozenset()   # topology: at least these
    steps: int | None = None             # simulate: the number of steps (JSON)
    tasks: int | None = None             # simulate: the number of distinct tasks (JSON)
    sim_nodes: int | None = None         # simulate: the number of host nodes (JSON)
    distances: bool = False              # topology: every node has a distance row


@dataclasses.dataclass
class Probe:
    cmd: str
    argv: list[str]
    codes: frozenset[int]
    fmt: str                # "json", "text", "markdown", "xml", "diff", "virsh"
    expect: Expect


@dataclasses.dataclass
class Case:
    index: int
    kind: str
    seed: str
    mutators: list[str]
    workdir: pathlib.Path
    mutated: pathlib.Path | None    # the file whose bytes were mutated (shrinkable)
    probes: list[Probe]


AUDIT_CODES = frozenset({0, 1, 2})
PLAIN_CODES = frozenset({0, 2})


def _fmt(rng: random.Random, *choices: str) -> str:
    return rng.choice(choices)


def _fmt_args(fmt: str) -> list[str]:
    return [] if fmt == "text" else ["--format", fmt]


def _node_dirs(tree: pathlib.Path) -> frozenset[int]:
    node_dir = tree / "sys" / "devices" / "system" / "node"
    return frozenset(int(m.group(1)) for p in node_dir.iterdir()
                     if (m := re.fullmatch(r"node([0-9]+)", p.name)) and p.is_dir())


def _fix_probe(rng: random.Random, target: str, host: str, *, cells: bool = False) -> Probe:
    """fix with an edit that fits the seed (a <memnode> only for a guest with NUMA cells)."""
    edits = [["--recommended"], ["--mode", "preferred", "--nodeset", "0"],
             ["--mode", "interleave", "--nodeset", "0-1"]]
    if cells:
        edits.append(["--memnode", "0:interleave:0-1"])
    edit = rng.choice(edits)
    out = rng.choice(["diff", "xml", "virsh"])
    return Probe("fix", ["fix", target, *edit, f"--{out}", "--host", host], PLAIN_CODES, out,
                 Expect())


def _domain_probes(rng: random.Random, path: str, *, cells: bool) -> list[Probe]:
    gfmt = _fmt(rng, "json", "json", "text")
    afmt = _fmt(rng, "json", "json", "text", "markdown")
    return [
        Probe("guests", ["guests", path, *_fmt_args(gfmt)], PLAIN_CODES, gfmt,
              Expect(guests=1, guest_source=path)),
        Probe("audit", ["audit", str(ARTICLE_HOST), path, *_fmt_args(afmt)], AUDIT_CODES,
              afmt, Expect(guests=1)),
        _fix_probe(rng, path, str(ARTICLE), cells=cells),
    ]


def _topology_host_probes(rng: random.Random, path: str, expect: Expect) -> list[Probe]:
    tfmt = _fmt(rng, "json", "json", "text")
    afmt = _fmt(rng, "json", "json", "text")
    probes = [
        Probe("topology", ["topology", path, *_fmt_args(tfmt)], PLAIN_CODES, tfmt, expect),
        Probe("audit", ["audit", path, str(ARTICLE_VM1), *_fmt_args(afmt)], AUDIT_CODES, afmt,
              dataclasses.replace(expect, guests=1)),
    ]
    if rng.random() < 0.3:
        probes.append(Probe("fix", ["fix", str(ARTICLE_VM1), "--mode", "preferred",
                                    "--nodeset", "0", "--virsh", "--host", path],
                            PLAIN_CODES, "virsh", Expect()))
    return probes


def _numactl_ids(data: bytes) -> frozenset[int]:
    return frozenset(int(m.group(1)) for m in re.finditer(
        rb"(?m)^node ([0-9]{1,4}) cpus:", data))


def _caps_ids(data: bytes) -> frozenset[int] | None:
    """The cell ids of a capabilities XML, parsed without any DTD or entity (None when the
    oracle cannot tell: not parseable, or it has a DTD, which numaguard must refuse)."""
    from lxml import etree

    plain = data.replace(b"\x00", b"")
    if b"<!DOCTYPE" in plain or b"<!ENTITY" in plain:
        return None
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                             huge_tree=False, recover=False)
    try:
        root = etree.fromstring(data, parser)
    except (etree.XMLSyntaxError, ValueError):
        return None
    ids = set()
    for cell in root.xpath("/capabilities/host/topology/cells/cell"):
        value = cell.get("id", "")
        if not (value.isascii() and value.isdigit() and len(value) < 6):
            return None
        ids.add(int(value))
    return frozenset(ids)


def _toml_counts(data: bytes) -> tuple[int | None, int | None]:
    """(steps, host nodes) of a scenario as Python's tomllib reads it (None where it cannot:
    then the oracle does not count)."""
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except Exception:  # noqa: BLE001 - the oracle only counts what it can read
        return None, None
    steps = doc.get("step")
    host = doc.get("host")
    nodes = host.get("nodes") if isinstance(host, dict) and "snapshot" not in doc else None
    return (len(steps) if isinstance(steps, list) else None,
            len(nodes) if isinstance(nodes, list) else None)


def _ctx_for(kind: str, canary: pathlib.Path, fifo: pathlib.Path,
             donor: bytes) -> dict[str, Any]:
    return {"kind": kind, "canary": str(canary), "fifo": str(fifo), "donor": donor,
            "root_tag": "capabilities" if kind == "caps" else "domain"}


def _maybe_mutate(rng: random.Random, data: bytes, kind: str, ctx: dict[str, Any],
                  really: bool) -> tuple[bytes, list[str]]:
    return mutate(rng, data, kind, ctx) if really else (data, ["none"])


def build_case(rng: random.Random, corpus: dict[str, list[Seed]], workroot: pathlib.Path,
               index: int, canary: pathlib.Path, fifo: pathlib.Path, *,
               kind: str | None = None, seed: Seed | None = None,
               mutate_input: bool = True) -> Case:
    """A fresh folder with one mutated input and the probes that read it (*kind* and *seed*
    drawn unless given; *mutate_input* false: the seed as it is)."""
    if kind is None:
        kinds = [k for k in KINDS if corpus[k]]
        kind = rng.choices(kinds, [KIND_WEIGHTS[k] for k in kinds])[0]
    if seed is None:
        seeds = corpus[kind]
        seed = rng.choices(seeds, [0.15 if "invalid" in s.path.parts else 1.0
                                   for s in seeds])[0]
    donor = rng.choice(corpus[kind]).path
    donor_bytes = donor.read_bytes() if donor.is_file() else b""
    workdir = workroot / f"case{index:06d}"
    workdir.mkdir()
    ctx = _ctx_for(kind, canary, fifo, donor_bytes)
    mutated: pathlib.Path | None = None
    mutators: list[str]
    probes: list[Probe]

    if kind in ("domain", "numactl", "caps", "toml"):
        mutated = workdir / seed.path.name
        data, mutators = _maybe_mutate(rng, seed.path.read_bytes(), kind, ctx, mutate_input)
        mutated.write_bytes(data)
        path = str(mutated)
        if kind == "domain":
            probes = _domain_probes(rng, path, cells=b"<numa>" in seed.path.read_bytes())
        elif kind == "numactl":
            probes = _topology_host_probes(rng, path, Expect(
                node_ids_include=_numactl_ids(data),
                distances=re.search(rb"(?m)^node distances:", data) is not None))
        elif kind == "caps":
            ids = _caps_ids(data)
            probes = _topology_host_probes(rng, path, Expect(node_ids_include=ids or
                                                             frozenset()))
        else:
            steps, nodes = _toml_counts(data)
            sfmt = _fmt(rng, "json", "json", "text")
            compare = ["--compare", "strict,interleave"] if rng.random() < 0.2 else []
            probes = [Probe("simulate", ["simulate", path, *_fmt_args(sfmt), *compare],
                            AUDIT_CODES, sfmt, Expect(steps=steps, sim_nodes=nodes))]
    elif kind == "snapshot":
        # the article host's snapshot with one domain replaced (or added) by a mutated one
        shutil.copytree(ARTICLE, workdir / "snap", symlinks=True)
        snap = workdir / "snap"
        target = snap / "domains" / (seed.path.name if rng.random() < 0.7 else "extra.xml")
        data, mutators = _maybe_mutate(rng, seed.path.read_bytes(), kind, ctx, mutate_input)
        target.write_bytes(data)
        mutated = target
        n = len(list((snap / "domains").glob("*.xml")))
        afmt = _fmt(rng, "json", "json", "text")
        probes = [
            Probe("audit", ["audit", str(snap), *_fmt_args(afmt)], AUDIT_CODES, afmt,
                  Expect(guests=n)),
            Probe("guests", ["guests", str(snap), "--format", "json"], PLAIN_CODES, "json",
                  Expect(guests=n)),
            Probe("simulate", ["simulate", str(snap), "--format", "json"], AUDIT_CODES, "json",
                  Expect(tasks=n)),
        ]
    else:  # sysfs: a captured tree with one file mutated, as a bare root and in a snapshot
        snap = workdir / "snap"
        tree = snap / "host"
        shutil.copytree(seed.path, tree, symlinks=True,
                        ignore=shutil.ignore_patterns("*.txt"))
        shutil.copytree(ARTICLE / "domains", snap / "domains")
        rel = rng.choice(seed.files)
        file = tree / rel
        before = _node_dirs(tree)
        op = tree_mutation(rng, file) if mutate_input else None
        if op is None:
            data, mutators = _maybe_mutate(rng, file.read_bytes(), kind, ctx, mutate_input)
            file.write_bytes(data)
            mutated = file
        else:
            mutators = [op]
        mutators = [f"{rel}:{m}" if i == 0 else m for i, m in enumerate(mutators)]
        node_dir = tree / "sys" / "devices" / "system" / "node"
        rows = all((node_dir / f"node{n}" / "distance").is_file() and not (
            node_dir / f"node{n}" / "distance").is_symlink() for n in before)
        if rel.endswith(("node/online", "node/possible")):
            expect = Expect(node_ids_within=before)
        else:
            expect = Expect(node_ids=before, distances=rows)
        tfmt = _fmt(rng, "json", "json", "text")
        afmt = _fmt(rng, "json", "json", "text")
        probes = [
            Probe("topology", ["topology", str(tree), *_fmt_args(tfmt)], PLAIN_CODES, tfmt,
                  expect),
            Probe("audit", ["audit", str(snap), *_fmt_args(afmt)], AUDIT_CODES, afmt,
                  dataclasses.replace(expect, guests=4)),
        ]
        if seed.path == ARTICLE_HOST:
            probes.append(Probe("simulate", ["simulate", str(snap), "--format", "json"],
                                AUDIT_CODES, "json", Expect(tasks=4)))
    return Case(index, kind, seed.name, mutators, workdir, mutated, probes)


# -- the oracle ----------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Failure:
    klass: str
    cmd: str
    key: str        # what deduplicates: command + class + exception type + last frame / kind
    detail: str
    raiser: str = ""   # the deepest numaguard frame, "file:function"


_FRAME = re.compile(r'^  File "([^"]+)", line (\d+), in (\S+)', re.MULTILINE)


def _short(path: str) -> str:
    i = path.rfind("/numaguard/")
    if i >= 0:
        return path[i + 1:]
    for marker in ("/lib/python3", "/tests/"):
        j = path.find(marker)
        if j >= 0:
            return path[j + 1:]
    return os.path.basename(path)


def parse_traceback(err: str) -> tuple[str, str, str]:
    """(exception type, last frame "file:function", deepest numaguard frame) of the last
    traceback in *err*."""
    start = err.rfind("Traceback (most recent call last)")
    block = err[start:] if start >= 0 else err
    frames = _FRAME.findall(block)
    exc_type = "?"
    for line in block.splitlines()[1:]:
        if line and not line.startswith(" "):
            m = re.match(r"([A-Za-z_][\w.]*)(:|$)", line)
            if m:
                exc_type = m.group(1)
                break
    last = f"{_short(frames[-1][0])}:{frames[-1][2]}" if frames else "?"
    ours = [f for f in frames if "/numaguard/" in f[0] and "/tests/" not in f[0]]
    raiser = f"{_short(ours[-1][0])}:{ours[-1][2]}:{ours[-1][1]}" if ours else last
    return exc_type, last, raiser


def _json(out: str) -> Any:
    try:
        return json.loads(out)
    except ValueError:
        return None


def _guest_count(cmd: str, data: Any) -> int | None:
    if isinstance(data, dict) and isinstance(data.get("guests"), list):
        return len(data["guests"])
    return None


def _simulate_accounting(e: Expect, data: dict[str, Any]) -> list[str]:
    """:func:`_accounting` for ``simulate``: every run's steps, nodes and tasks."""
    problems = []
    runs = list(data["compare"].values()) if isinstance(data.get("compare"), dict) else [
        data]
    for run in runs:
        steps = run.get("steps") if isinstance(run, dict) else None
        if not isinstance(steps, list):
            problems.append("no steps in the result")
            continue
        if e.steps is not None and len(steps) != e.steps:
            problems.append(f"{len(steps)} steps reported, the scenario has {e.steps}")
        sim_nodes = run.get("nodes")
        if e.sim_nodes is not None and (not isinstance(sim_nodes, list) or
                                        len(sim_nodes) != e.sim_nodes):
            problems.append(f"{len(sim_nodes or [])} nodes simulated, the scenario has "
                            f"{e.sim_nodes}")
        if e.tasks is not None:
            tasks = {s.get("name") for s in steps if isinstance(s, dict)}
            if len(tasks) != e.tasks:
                problems.append(f"{len(tasks)} guests simulated, {e.tasks} given")
    return problems


def _accounting(probe: Probe, out: str) -> list[str]:
    """Why a successful JSON output does not account for its input (empty: it does)."""
    e = probe.expect
    data = _json(out)
    if data is None:
        return ["__badjson__"]
    problems = []
    if e.guests is not None:
        n = _guest_count(probe.cmd, data)
        if n != e.guests:
            problems.append(f"{n} guests reported, {e.guests} given")
        elif e.guest_source is not None:
            src = data["guests"][0].get("source") if isinstance(data["guests"][0], dict) else None
            if src is not None and src != e.guest_source:
                problems.append(f"guest source {src!r}, expected {e.guest_source!r}")
    nodes = None
    if probe.cmd == "topology" and isinstance(data, dict):
        nodes = data.get("nodes")
    elif probe.cmd == "audit" and isinstance(data, dict):
        nodes = (data.get("host") or {}).get("nodes")
    if nodes is not None or e.node_ids is not None or e.node_ids_within is not None:
        ids = frozenset(n.get("id") for n in nodes or [] if isinstance(n, dict))
        if not ids:
            problems.append("no node reported")
        if e.node_ids is not None and ids != e.node_ids:
            problems.append(f"nodes {sorted(ids)} reported, the tree has {sorted(e.node_ids)}")
        if e.node_ids_within is not None and not ids <= e.node_ids_within:
            problems.append(f"nodes {sorted(ids)} reported, the tree has "
                            f"{sorted(e.node_ids_within)}")
        if e.node_ids_include and not e.node_ids_include <= ids:
            problems.append(f"nodes {sorted(e.node_ids_include - ids)} of the input not "
                            "reported")
        host = data if probe.cmd == "topology" else data.get("host")
        if e.distances and isinstance(host, dict) and not (
                isinstance(host.get("distances"), list) and len(host["distances"]) == len(ids)):
            problems.append("the input has a distance table but none is reported")
    if probe.cmd == "simulate" and isinstance(data, dict):
        problems += _simulate_accounting(e, data)
    return problems


def judge(probe: Probe, outcome: Outcome, kind: str = "") -> list[Failure]:
    """Every way *outcome* breaks the oracle (see the module docstring); *kind* (of input)
    refines the keys of hangs and drops, which have no traceback to tell them apart."""
    cmd = probe.cmd
    where = f" {kind}" if kind else ""
    fails: list[Failure] = []
    if outcome.timed_out:
        fails.append(Failure("timeout", cmd, f"{cmd} timeout{where}", f"{outcome.elapsed:.1f}s"))
    elif outcome.code < 0:
        fails.append(Failure("crash", cmd, f"{cmd} crash signal {-outcome.code}",
                             outcome.err[-500:]))
    if outcome.traceback:
        exc, last, raiser = parse_traceback(outcome.err + "\n" + outcome.out)
        fails.append(Failure("traceback", cmd, f"{cmd} traceback {exc} @ {last}",
                             outcome.err[-1500:], raiser))
    leaked = CANARY in outcome.out or CANARY in outcome.err
    if leaked:
        fails.append(Failure("leak", cmd, f"{cmd} leak", "canary content in the output"))
    if outcome.timed_out or outcome.code < 0 or outcome.traceback:
        return fails
    if outcome.code not in probe.codes:
        fails.append(Failure("exit-code", cmd, f"{cmd} exit {outcome.code}",
                             outcome.err[-800:]))
        return fails
    if outcome.code == 2:
        lines = outcome.err.splitlines()
        prefix = f"numaguard {cmd}: "
        bad = [ln for ln in lines if not ln.startswith(prefix)]
        if not lines or bad:
            fails.append(Failure("stderr-format", cmd, f"{cmd} stderr-format",
                                 repr(bad[:3]) if lines else "empty stderr"))
    else:
        if not outcome.out_bytes and not outcome.err_bytes:
            fails.append(Failure("bad-output", cmd, f"{cmd} bad-output empty", "no output"))
        elif probe.fmt == "json":
            problems = _accounting(probe, outcome.out)
            if problems == ["__badjson__"]:
                fails.append(Failure("bad-output", cmd, f"{cmd} bad-output json",
                                     outcome.out[:300]))
            elif problems:
                fails.append(Failure("silent-drop", cmd, f"{cmd} silent-drop{where}",
                                     "; ".join(problems)))
    terminal = [("stderr", outcome.err)]
    if probe.fmt not in ("json", "xml"):
        terminal.append(("stdout", outcome.out))
    for name, stream in terminal:
        m = RAW_CONTROL.search(stream)
        if m:
            fails.append(Failure("raw-control", cmd, f"{cmd} raw-control {name}",
                                 f"{m.group(0)!r} at {stream[max(0, m.start() - 40):m.end()]!r}"))
    return fails


# -- the run -------------------------------------------------------------------------------

@dataclasses.dataclass
class Finding:
    failure: Failure
    case: Case
    probe: Probe
    outcome: Outcome
    count: int = 1
    mutators: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    kinds: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)


@dataclasses.dataclass
class Report:
    seed: int
    inputs: int = 0
    runs: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    exits: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    failures: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    failed_runs: int = 0
    findings: dict[str, Finding] = dataclasses.field(default_factory=dict)
    elapsed: float = 0.0
    slowest: tuple[float, str] = (0.0, "")
    root: pathlib.Path | None = None   # where the cases live (kept ones until saved)

    def summary(self) -> str:
        lines = [(f"fuzz: seed {self.seed}: {self.inputs} inputs, "
                  f"{sum(self.runs.values())} runs in {self.elapsed:.1f}s "
                  f"(slowest {self.slowest[0]:.2f}s: {self.slowest[1]})"),
                 "runs per command: " + ", ".join(f"{k} {v}" for k, v in sorted(
                     self.runs.items())),
                 "exit codes: " + ", ".join(f"{k} {v}" for k, v in sorted(self.exits.items())),
                 f"failed runs: {self.failed_runs}; failures by class: " + (", ".join(
                     f"{k} {v}" for k, v in sorted(self.failures.items())) or "none"),
                 f"distinct failures: {len(self.findings)}"]
        for key, f in sorted(self.findings.items(), key=lambda kv: -kv[1].count):
            lines.append(f"  {f.count:5d}  {key}" + (f"  [{f.failure.raiser}]"
                                                     if f.failure.raiser else ""))
        return "\n".join(lines)


def preload() -> None:
    """Import every numaguard module here, so the forked children do not (fast runs)."""
    import numaguard

    for info in pkgutil.walk_packages(numaguard.__path__, "numaguard."):
        if info.name.endswith("__main__"):
            continue
        # an ImportError: an optional extra (libvirt, prometheus_client) that is not installed
        with contextlib.suppress(ImportError):
            importlib.import_module(info.name)
    import rich.console  # noqa: F401  (the text renderers')


def fuzz(inputs: int, *, seed: int = 0, parallel: int = 2, timeout: float = 5.0,
         mem_limit: int = 2 * GiB, workroot: pathlib.Path | None = None,
         keep: int = 200, progress: Callable[[str], None] | None = None,
         main: Callable[[Sequence[str]], object] | None = None,
         mutated: bool = True) -> Report:
    """Build *inputs* mutated cases from ``random.Random(seed)`` and run their probes,
    *parallel* at a time.  The first case of each distinct failure is kept (up to *keep*)
    for :func:`save_findings`; the others are deleted as soon as they are judged.  *main*
    replaces ``numaguard.cli.main`` (the fuzzer's own tests plant bugs with it); with
    *mutated* false every seed of the corpus is run once as it is (*inputs* is ignored)."""
    preload()
    rng = random.Random(seed)
    corpus = load_corpus()
    own_root = workroot is None
    root = pathlib.Path(tempfile.mkdtemp(prefix="numaguard-fuzz-")) if own_root else workroot
    assert root is not None
    root.mkdir(parents=True, exist_ok=True)
    canary = root / "canary.txt"
    canary.write_text(CANARY + "\n")
    fifo = root / "fifo"
    if not fifo.exists():
        os.mkfifo(fifo)
    report = Report(seed)
    pending: dict[int, int] = {}
    cases: dict[int, Case] = {}
    kept: set[int] = set()
    start = time.monotonic()
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "COLUMNS")}
    env["COLUMNS"] = "100"

    def plan() -> Iterator[Case]:
        if mutated:
            for index in range(inputs):
                yield build_case(rng, corpus, root, index, canary, fifo)
            return
        index = 0
        for kind, seeds in corpus.items():
            for s in seeds:
                yield build_case(rng, corpus, root, index, canary, fifo, kind=kind, seed=s,
                                 mutate_input=False)
                index += 1

    def jobs() -> Iterator[tuple[Sequence[str], dict[str, Any]]]:
        for case in plan():
            index = case.index
            cases[index] = case
            pending[index] = len(case.probes)
            report.inputs += 1
            for probe in case.probes:
                job_probe.append((index, probe))
                yield probe.argv, {"timeout": timeout, "mem_limit": mem_limit, "env": env,
                                   "cwd": str(ROOT), "main": main}

    job_probe: list[tuple[int, Probe]] = []
    next_progress = 500
    try:
        for job, outcome in run_many(jobs(), parallel=parallel):
            index, probe = job_probe[job]
            case = cases[index]
            report.runs[probe.cmd] += 1
            report.exits[f"{probe.cmd}:{'timeout' if outcome.timed_out else outcome.code}"] += 1
            if outcome.elapsed > report.slowest[0]:
                report.slowest = (outcome.elapsed, shlex.join(probe.argv))
            fails = judge(probe, outcome, case.kind)
            if fails:
                report.failed_runs += 1
            for f in fails:
                report.failures[f.klass] += 1
                finding = report.findings.get(f.key)
                if finding is None:
                    finding = Finding(f, case, probe, outcome, count=0)
                    report.findings[f.key] = finding
                    if len(kept) < keep:
                        kept.add(index)
                finding.count += 1
                finding.mutators.update(case.mutators)
                finding.kinds[case.kind] += 1
            pending[index] -= 1
            if pending[index] == 0:
                del pending[index]
                if index not in kept:
                    shutil.rmtree(case.workdir, ignore_errors=True)
                    del cases[index]
            if progress is not None and report.inputs >= next_progress:
                next_progress += 500
                progress(f"{report.inputs} inputs, {report.failed_runs} failed runs, "
                         f"{len(report.findings)} distinct, {time.monotonic() - start:.0f}s")
    finally:
        report.elapsed = time.monotonic() - start
        report.root = root
    return report


# -- reproducers ---------------------------------------------------------------------------

def _still_fails(finding: Finding, timeout: float) -> bool:
    outcome = run_cli(finding.probe.argv, timeout=timeout, cwd=str(ROOT))
    return any(f.key == finding.failure.key
               for f in judge(finding.probe, outcome, finding.case.kind))


def minimize(finding: Finding, *, budget: int = 400, timeout: float = 5.0) -> int:
    """Shrink the case's mutated file while the same failure (same key) reproduces: whole
    chunks of lines, then of bytes, removed ddmin-style.  Returns the runs spent."""
    path = finding.case.mutated
    if path is None or not path.is_file():
        return 0
    if finding.failure.klass == "timeout":
        budget = min(budget, 12)
    data = path.read_bytes()
    runs = 0
    for unit in ("lines", "bytes"):
        parts = data.splitlines(keepends=True) if unit == "lines" else [
            data[i:i + 1] for i in range(len(data))]
        if unit == "bytes" and len(parts) > 4096:
            continue
        n = 2
        while len(parts) >= 2 and runs < budget:
            size = max(1, len(parts) // n)
            shrunk = False
            for i in range(0, len(parts), size):
                if runs >= budget:
                    break
                trial = parts[:i] + parts[i + size:]
                path.write_bytes(b"".join(trial))
                runs += 1
                if _still_fails(finding, timeout):
                    parts = trial
                    n = max(n - 1, 2)
                    shrunk = True
                    break
            if not shrunk:
                if size == 1:
                    break
                n = min(len(parts), n * 2)
        data = b"".join(parts)
        path.write_bytes(data)
    return runs


def copy_tree(src: pathlib.Path, dst: pathlib.Path) -> None:
    """Copy a case folder as it is: links stay links, FIFOs are made anew (shutil.copytree
    would open them, and block)."""
    for dirpath, dirnames, filenames in os.walk(src):
        rel = pathlib.Path(dirpath).relative_to(src)
        (dst / rel).mkdir(parents=True, exist_ok=True)
        for name in [*dirnames, *filenames]:
            s, d = pathlib.Path(dirpath) / name, dst / rel / name
            if s.is_symlink():
                d.symlink_to(os.readlink(s))
            elif s.is_fifo():
                os.mkfifo(d)
            elif s.is_file():
                shutil.copy2(s, d)
        dirnames[:] = [n for n in dirnames if not (pathlib.Path(dirpath) / n).is_symlink()]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")[:90]


def save_findings(report: Report, directory: pathlib.Path, *, shrink: bool = True,
                  budget: int = 400, timeout: float = 5.0, max_seconds: float = 240.0) -> list[
                      pathlib.Path]:
    """One folder per distinct failure: the (minimised) input, ``cmd.sh`` (the exact command
    line, run from the repository root), ``stderr.txt``/``stdout.txt`` of the first run and
    ``finding.json``.  Returns the folders."""
    directory.mkdir(parents=True, exist_ok=True)
    saved = []
    deadline = time.monotonic() + max_seconds
    for n, (key, f) in enumerate(sorted(report.findings.items()), 1):
        if not f.case.workdir.exists():
            continue
        spent = 0
        if shrink and time.monotonic() < deadline:
            spent = minimize(f, budget=budget, timeout=timeout)
        out = directory / f"{n:03d}-{_slug(key)}"
        if out.exists():
            shutil.rmtree(out)
        copy_tree(f.case.workdir, out / "input")
        argv = [a.replace(str(f.case.workdir), str(out / "input")) for a in f.probe.argv]
        rerun = run_cli(argv, timeout=timeout, cwd=str(ROOT))
        (out / "cmd.sh").write_text(f"cd {shlex.quote(str(ROOT))} && .venv/bin/numaguard "
                                    f"{shlex.join(argv)}\n")
        (out / "stderr.txt").write_bytes(rerun.err_bytes[-20000:])
        (out / "stdout.txt").write_bytes(rerun.out_bytes[:20000])
        reproduces = any(x.key == key for x in judge(f.probe, rerun, f.case.kind))
        (out / "finding.json").write_text(json.dumps({
            "key": key, "class": f.failure.klass, "command": f.failure.cmd,
            "raiser": f.failure.raiser, "count": f.count, "kind": f.case.kind,
            "seed_file": f.case.seed, "mutators": f.case.mutators,
            "mutators_seen": dict(f.mutators.most_common(12)), "kinds_seen": dict(f.kinds),
            "detail": f.failure.detail[-1500:], "argv": argv, "exit": rerun.code,
            "timed_out": rerun.timed_out, "reproduces": reproduces,
            "shrink_runs": spent,
            "input_bytes": f.case.mutated.stat().st_size if f.case.mutated and
            f.case.mutated.is_file() else None,
        }, indent=2) + "\n")
        saved.append(out)
    return saved


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--inputs", type=int, default=int(os.environ.get("FUZZ_RUNS", "2000")))
    ap.add_argument("--seed", type=int, default=int(os.environ.get("FUZZ_SEED", "0")))
    ap.add_argument("--parallel", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=5.0)
    ap.add_argument("--findings", type=pathlib.Path,
                    default=pathlib.Path(os.environ.get("FUZZ_FINDINGS", "/tmp/fuzz-findings")))
    ap.add_argument("--no-shrink", action="store_true")
    args = ap.parse_args(argv)
    report = fuzz(args.inputs, seed=args.seed, parallel=args.parallel, timeout=args.timeout,
                  progress=lambda s: print(s, file=sys.stderr, flush=True))
    print(report.summary())
    if report.findings:
        saved = save_findings(report, args.findings, shrink=not args.no_shrink,
                              timeout=args.timeout)
        print(f"reproducers: {len(saved)} in {args.findings}")
    if report.root is not None:
        shutil.rmtree(report.root, ignore_errors=True)
    return 1 if report.findings else 0


if __name__ == "__main__":
    sys.exit(main())
