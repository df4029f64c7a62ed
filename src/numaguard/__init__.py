"""numaguard: audit, simulate and fix NUMA memory policies of libvirt/KVM guests."""

__version__ = "0.1.0"
