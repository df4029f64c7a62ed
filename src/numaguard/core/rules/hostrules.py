"""Rules: placeholder module, filled in below."""
