"""Memory rules (NG1xx)."""
