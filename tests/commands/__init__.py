"""Every command numaguard prints for the user to paste, run or checked (issue 10, section 3)."""
