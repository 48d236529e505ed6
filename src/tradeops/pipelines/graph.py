"""The asset graph of a code location as a picture: a Mermaid flowchart rendered from the definitions themselves.

Nodes are assets (with their partitioning and their checks, blocking ones marked), edges are dependencies
(upstream -> downstream), subgraphs are the asset groups (one per level: data, features, model, ...). Nothing is
hand-drawn, so the picture cannot drift from the code:

    python -m tradeops.pipelines.graph > docs/asset-graph.md
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable

BLOCKING_MARK = "⛔"  # a failed blocking check stops every downstream asset
CHECK_MARK = "✓"
_LEVEL_LABELS = {"data": "Data level", "features": "Features", "model": "Model level", "deployment": "Deployment"}


def _node_id(path: Iterable[str], prefix: str = "a_") -> str:
    """A Mermaid identifier: letters, digits and underscores only, prefixed so no id is a keyword (``end``)."""
    return prefix + re.sub(r"[^A-Za-z0-9_]", "_", "__".join(path))


def _escape(text: str) -> str:
    """Mermaid label text: quotes and angle brackets would end the label or open HTML."""
    return text.replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")


def _partitioning(partitions_def) -> str | None:
    """A short name of an asset's partitioning: ``date x ticker``, ``date``, ``ticker`` or ``None``."""
    if partitions_def is None:
        return None
    dims = getattr(partitions_def, "partition_dimension_names", None)
    if dims:
        return " x ".join(dims)
    kind = type(partitions_def).__name__
    if "Time" in kind or "Daily" in kind:
        return "date"
    if "Static" in kind:
        return "static"
    return kind.removesuffix("PartitionsDefinition").lower() or "partitioned"


def _ordered_keys(graph) -> list:
    """Asset keys upstream first (depth = longest path from a root), ties by name: a stable reading order."""
    keys = sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string())
    depth: dict = {}

    def visit(key, trail: frozenset) -> int:
        if key in depth:
            return depth[key]
        parents = [p for p in graph.get(key).parent_keys if p in graph.get_all_asset_keys() and p not in trail]
        depth[key] = 1 + max((visit(p, trail | {key}) for p in parents), default=-1)
        return depth[key]

    for key in keys:
        visit(key, frozenset())
    return sorted(keys, key=lambda k: (depth[k], k.to_user_string()))


def asset_graph_mermaid(defs) -> str:
    """Mermaid ``flowchart LR`` source (no fences) of ``defs``' assets, their checks and dependencies.

    ``defs`` is a :class:`dagster.Definitions`. Assets without a group go to ``default``. Output is deterministic
    (same definitions -> same text), so a committed picture can be checked against the code.
    """
    graph = defs.resolve_asset_graph()
    keys = _ordered_keys(graph)
    checks_by_asset: dict = {}
    for check_key in sorted(graph.asset_check_keys, key=lambda c: c.name):
        checks_by_asset.setdefault(check_key.asset_key, []).append(
            (check_key.name, bool(getattr(graph.get(check_key), "blocking", False)))
        )

    groups: dict[str, list] = {}
    for key in keys:
        groups.setdefault(graph.get(key).group_name or "default", []).append(key)

    lines = ["flowchart LR"]
    for group, members in groups.items():
        label = _LEVEL_LABELS.get(group, group)
        lines.append(f'  subgraph {_node_id([group], "g_")}["{_escape(label)}"]')
        for key in members:
            node = graph.get(key)
            parts = [f"<b>{_escape(key.to_user_string())}</b>"]
            partitioning = _partitioning(node.partitions_def)
            if partitioning:
                parts.append(f"<i>{_escape(partitioning)}</i>")
            for name, blocking in checks_by_asset.get(key, []):
                parts.append(f"{BLOCKING_MARK if blocking else CHECK_MARK} {_escape(name)}")
            lines.append(f'    {_node_id(key.path)}["{"<br/>".join(parts)}"]')
        lines.append("  end")
    for key in keys:
        for parent in sorted(graph.get(key).parent_keys, key=lambda k: k.to_user_string()):
            if parent in graph.get_all_asset_keys():
                lines.append(f"  {_node_id(parent.path)} --> {_node_id(key.path)}")
    return "\n".join(lines) + "\n"


def asset_graph_markdown(defs) -> str:
    """A Markdown page holding the Mermaid picture (GitHub renders it) with its legend."""
    graph = defs.resolve_asset_graph()
    n_assets = len(graph.get_all_asset_keys())
    n_checks = len(graph.asset_check_keys)
    return (
        "# Asset graph\n\n"
        "Generated from the definitions of the `tradeops.pipelines` code location; do not edit by hand:\n\n"
        "```\npython -m tradeops.pipelines.graph > docs/asset-graph.md\n```\n\n"
        f"{n_assets} assets, {n_checks} asset checks. Arrows point downstream. Under each asset: its partitioning "
        f"(`date x ticker` = XNYS trading date times the ticker universe) and its checks; {BLOCKING_MARK} marks a "
        f"blocking check (a failure stops everything downstream and leaves the previous version in place), "
        f"{CHECK_MARK} a non-blocking one. The same graph, live, is in `tradeops ui dagster` (Lineage tab).\n\n"
        f"```mermaid\n{asset_graph_mermaid(defs)}```\n"
    )


def main() -> None:
    """Print the Markdown page of the configured code location's asset graph."""
    from tradeops.config import load_settings
    from tradeops.pipelines.definitions import build_defs

    sys.stdout.write(asset_graph_markdown(build_defs(load_settings())))


if __name__ == "__main__":
    main()
