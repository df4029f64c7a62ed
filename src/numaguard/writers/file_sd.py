"""A Prometheus ``file_sd`` targets file: the fleet's exporters, for ``numaguard audit --hosts
FILE --file-sd PATH`` (docs/fleet.md, "Prometheus service discovery").

Prometheus's ``<file_sd_config>`` (https://prometheus.io/docs/prometheus/latest/configuration/
configuration/#file_sd_config) reads "a list of zero or more <static_config>s", in JSON when
the name ends in ``.json`` (discovery/file/file.go ``readFile`` picks the parser by the
extension; config's file name pattern must end in ``.json``, ``.yml`` or ``.yaml``): here
``[{"targets": ["HOST:PORT"], "labels": {"numaguard_uri": URI}}, …]``.  "Changes to all defined
files are detected via disk watches and applied immediately", and the parent directory "is also
watched implicitly … to handle atomic renaming": the file is replaced by
:func:`numaguard.writers.xml_patch.write_atomic` (a hidden temporary file beside it, fsync,
``rename(2)``), so Prometheus reads the old file or the new one, never half of one — "only
changes resulting in well-formed target groups are applied" would otherwise keep the old
targets until the next write.  The temporary name (``.NAME.XXXXXXXX.numaguard-tmp``) matches
no ``*.json`` pattern.

A symbolic link at PATH is refused (the rename would replace the link, not the file it points
to); so is a name not ending in ``.json``, a folder that does not exist, or anything but a
regular file there: one line naming PATH, nothing written."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from numaguard.errors import SourceError
from numaguard.writers.xml_patch import NO_FOLLOW_HINT, OUTPUT_MODE, refuse_link, write_atomic

#: what Prometheus reads as JSON (its parser is picked by the name's extension)
SUFFIX = ".json"


def file_sd_json(groups: Iterable[Mapping[str, Any]]) -> bytes:
    """The file's bytes: the target groups as one JSON list, two-space indented, UTF-8."""
    return (json.dumps(list(groups), indent=2, ensure_ascii=False) + "\n").encode()


def write_file_sd(path: str, groups: Iterable[Mapping[str, Any]]) -> None:
    """Create or atomically replace *path* with the target groups (mode 0644 minus the umask:
    Prometheus, another user, reads it).  A bad *path* is a :class:`SourceError` naming it and
    nothing is written."""
    data = file_sd_json(groups)
    if not path.endswith(SUFFIX):
        raise SourceError(path, f"a file_sd file Prometheus reads as JSON must end in {SUFFIX}; "
                          "nothing written")
    refuse_link(path)
    write_atomic(path, data, mode=OUTPUT_MODE, link_hint=NO_FOLLOW_HINT)
