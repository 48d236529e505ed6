"""Export the asset graph picture from the Dagster UI (docs/asset-graph-ui.png).

Not part of the package or the tests: needs `pip install playwright` in any venv and Debian's chromium. With
`tradeops ui dagster --port 3057` running on a home:

    python docs/tools/screenshot_asset_graph.py http://127.0.0.1:3057 docs/asset-graph-ui.png

Opens the global asset lineage, expands the three groups (data, features, model) and saves the graph area.
"""

from __future__ import annotations

import sys

from PIL import Image
from playwright.sync_api import sync_playwright

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking", "--disable-sync"]
GRAPH_AREA = (560, 290, 2160, 840)  # of the 2200 x 1100 page: the graph without the navigation


def main(base: str, out: str) -> None:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 2200, "height": 1100})
        page.goto(f"{base}/asset-groups")
        page.wait_for_timeout(7000)
        for group in ("data", "features", "model"):
            page.get_by_text(group, exact=True).last.dblclick(timeout=3000)
            page.wait_for_timeout(1500)
        page.wait_for_timeout(3000)
        page.screenshot(path=out)
        browser.close()
    Image.open(out).crop(GRAPH_AREA).convert("RGB").save(out, optimize=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
