"""Scenarios where the simulator cannot agree with the kernel, and the kernel behaviour that
explains it.  test_oracle.py marks them xfail(strict=True); run_oracle.py shows them in its
table.  Remove an entry when the engine learns the behaviour (the strict xfail then fails, so
nobody forgets).  Cite Debian's linux-source-6.1 6.1.192-2, the kernel measured.

History: n2-two-hogs-swap was listed here until the engine learnt that reclaim swaps the
node's oldest anonymous pages, whoever owns them (mm/memory.c:4230 do_anonymous_page ->
lru_cache_add_inactive_or_unevictable adds at the head of the inactive anon LRU;
mm/vmscan.c:2222 isolate_lru_folios takes lru_to_folio = the tail): the kernel swapped vm1's
128 MiB, not the allocating app's (tests/oracle/README.md).
"""

KNOWN_DISAGREEMENTS: dict[str, str] = {}
