"""Prometheus exporter: :mod:`.collector` (the metrics of one audit per scrape, sources
injected, nothing registered at import) and :mod:`.serve` (HTTP on loopback, or one atomic
textfile for node_exporter's textfile collector).  Needs the ``exporter`` extra
(``prometheus-client``)."""
