"""deploy/grafana-dashboard.json's PromQL, with its template variables filled in."""

from __future__ import annotations

import re

#: values for the dashboard's variables: any instance, node 0
VALUES = {"instance": ".+", "node": "0"}


def fill(expr: str) -> str:
    return re.sub(r"\$(\w+)", lambda m: VALUES[m.group(1)], expr)


def panel_exprs(board: dict) -> list[str]:
    """Every panel target's expression, and the selector inside each query variable's
    ``label_values(SELECTOR, label)``, variables filled."""
    exprs = [fill(t["expr"]) for p in board["panels"] for t in p.get("targets", ())]
    for v in board["templating"]["list"]:
        if v["type"] == "query":
            m = re.fullmatch(r"label_values\((.*), *\w+\)", v["query"]["query"])
            assert m is not None, v
            exprs.append(fill(m.group(1)))
    return exprs
