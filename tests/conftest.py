"""Test-wide settings."""

import pytest


@pytest.fixture(autouse=True)
def _no_implicit_libvirt(monkeypatch):
    """A command without SOURCE reads libvirt when libvirtd runs here (issue 12); the tests of
    "this machine" mean its files, whatever daemon the integration tests left running.  Tests
    of the default itself pass their own sockets and environment to ``default_uri``."""
    monkeypatch.delenv("LIBVIRT_DEFAULT_URI", raising=False)
    monkeypatch.setattr("numaguard.readers.sources.LIBVIRT_SOCKETS", ())
