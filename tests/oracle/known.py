"""Scenarios where the simulator cannot agree with the kernel, and the kernel behaviour that
explains it.  test_oracle.py marks them xfail(strict=True); run_oracle.py shows them in its
table.  Remove an entry when the engine learns the behaviour (the strict xfail then fails, so
nobody forgets).  Line numbers are Debian's linux-source-6.1 6.1.192-2, the kernel measured."""

KNOWN_DISAGREEMENTS: dict[str, str] = {
    "n2-two-hogs-swap": (
        "reclaim swaps the node's OLDEST anonymous pages, not the allocating task's: "
        "do_anonymous_page puts each new page at the head of the inactive anon LRU "
        "(mm/memory.c:4230 lru_cache_add_inactive_or_unevictable -> list_add in "
        "lruvec_add_folio) and shrink_inactive_list isolates from the tail "
        "(mm/vmscan.c:2222 lru_to_folio = head->prev). Measured: at app's OOM vm1 had "
        "rss 31334 + swapents 32748 pages (all 128 MiB of swap), app 49299 + 0; vm1 is the "
        "victim (simulator agrees), app ends 250 MiB resident on node 0 with no swap, while "
        "the simulator charges the 128 MiB of swap to app (122 MiB resident)."),
}
