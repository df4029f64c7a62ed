"""deploy/grafana-dashboard.json checked offline (Grafana is not installable here): it loads
with grafana-foundation-sdk (Grafana's own generated models), its layout and variables hold
together, every query is PromQL that ``promtool check rules`` parses, and every numaguard
metric it names is one the exporter serves."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.exporter.dashboard import panel_exprs
from tests.exporter.test_collector import scrape_article_host

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana-dashboard.json"


def _board() -> dict:
    return json.loads(DASHBOARD.read_text())


def test_loads_with_grafana_foundation_sdk() -> None:
    from grafana_foundation_sdk.models.dashboard import Dashboard, Panel, RowPanel

    board = Dashboard.from_json(_board())
    assert board.uid == "numaguard"
    assert [type(p) for p in board.panels][:2] == [RowPanel, Panel]
    titles = {p.title for p in board.panels}
    assert {"Memory on node $node by guest", "Predicted OOM kills", "Guest locality",
            "Headroom per node"} <= titles
    # the stacked per-node panel really stacks (the article's Figure 4)
    stacked = next(p for p in board.panels if p.title == "Memory on node $node by guest")
    assert stacked.field_config.defaults.custom["stacking"]["mode"] == "normal"


def test_layout_and_variables() -> None:
    board = _board()
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    names = {v["name"] for v in board["templating"]["list"]}
    for p in board["panels"]:
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24 and g["w"] > 0 and g["h"] > 0, p["title"]
        if p["type"] != "row":
            assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert p["targets"], p["title"]
        used = re.findall(r"\$\{?(\w+)", json.dumps(p))
        assert set(used) <= names, (p["title"], used)


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed "
                    "(Debian: apt-get install prometheus)")
def test_every_query_parses(tmp_path: Path) -> None:
    exprs = panel_exprs(_board())
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"numaguard:dashboard:expr{i}", "expr": e} for i, e in enumerate(exprs)]}]}
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(json.dumps(rules))
    done = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in done.stdout


def test_names_only_served_metrics() -> None:
    served = set(scrape_article_host(live=True))
    named = {m for e in panel_exprs(_board()) for m in re.findall(r"numaguard_\w+", e)}
    assert named and named <= served, named - served
