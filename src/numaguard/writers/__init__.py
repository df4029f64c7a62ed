"""Edges that write: snapshots, XML patches, virsh lines, libvirt apply.  Dry-run by default;
whatever writes does it atomically."""
