"""The asset-graph picture is rendered from the definitions: every asset, check and dependency appears, and the
committed ``docs/asset-graph.md`` is what the generator prints for the current code location."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from tradeops.config import load_settings
from tradeops.pipelines.graph import BLOCKING_MARK, CHECK_MARK, asset_graph_markdown, asset_graph_mermaid

DOC = Path(__file__).resolve().parents[2] / "docs" / "asset-graph.md"


def _tiny_defs() -> dg.Definitions:
    @dg.asset(group_name="data")
    def raw():
        return 1

    @dg.asset(group_name="data", deps=[raw])
    def clean():
        return 1

    @dg.asset(group_name="model", deps=[clean, raw])
    def model():
        return 1

    @dg.asset_check(asset=raw, blocking=True)
    def contract():
        return dg.AssetCheckResult(passed=True)

    @dg.asset_check(asset=model)
    def size():
        return dg.AssetCheckResult(passed=True)

    return dg.Definitions(assets=[raw, clean, model], asset_checks=[contract, size])


def test_tiny_graph_renders_groups_nodes_checks_and_edges_exactly():
    assert asset_graph_mermaid(_tiny_defs()) == (
        "flowchart LR\n"
        '  subgraph g_data["Data level"]\n'
        f'    a_raw["<b>raw</b><br/>{BLOCKING_MARK} contract"]\n'
        '    a_clean["<b>clean</b>"]\n'
        "  end\n"
        '  subgraph g_model["Model level"]\n'
        f'    a_model["<b>model</b><br/>{CHECK_MARK} size"]\n'
        "  end\n"
        "  a_raw --> a_clean\n"
        "  a_clean --> a_model\n"
        "  a_raw --> a_model\n"
    )


def _defs():
    from tradeops.pipelines.definitions import build_defs

    return build_defs(load_settings(home="unused-home"))


def test_the_code_location_graph_shows_every_asset_check_and_dependency():
    defs = _defs()
    text = asset_graph_mermaid(defs)
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        assert f"<b>{key.to_user_string()}</b>" in text
        for parent in graph.get(key).parent_keys:
            assert f"a_{parent.to_user_string()} --> a_{key.to_user_string()}" in text
    for check in graph.asset_check_keys:
        mark = BLOCKING_MARK if graph.get(check).blocking else CHECK_MARK
        assert f"{mark} {check.name}" in text
    assert text.count("subgraph ") == len({graph.get(k).group_name for k in graph.get_all_asset_keys()})


def test_committed_picture_is_up_to_date():
    assert DOC.read_text() == asset_graph_markdown(_defs()), (
        "docs/asset-graph.md is stale: python -m tradeops.pipelines.graph > docs/asset-graph.md"
    )
