"""Edges that read the world: sysfs, numactl text, libvirt XML files, snapshots, libvirt API."""
