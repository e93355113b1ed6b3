"""The README's screenshots of the status pages: `make screenshots` (needs chromium, prometheus
and promtool, as the browser tests do).

The demo world with a real Prometheus scraping its simulated TenSafe API (GPU at 85 %, CPU at
75 %: a yellow light), two alerts (one past its respond-by) and, for the customers page's
trend, daily records of a few earlier days stored near today's numbers (a fresh demo has only
today).

    python -m tests.pages.screenshots docs/img
"""

import sys
import tempfile
import time
from pathlib import Path

from tests.pages.browser import DESKTOP, chromium
from tests.pages.served import Served, basic_header, served_demo

SHOTS = {
    "status.png": ("/status", "light"),
    "status-dark.png": ("/status", "dark"),
    "customers.png": ("/customers", "light"),
}


def settled(served: Served, limit: float = 30.0) -> None:
    """Until no source looks stale: one that refreshed while `fire` held the clock back looks
    20 minutes old until its next refresh, which is no picture of the demo."""
    deadline = time.monotonic() + limit
    while any("stale" in reason for reason in served.request("/api/v1/status")["reasons"]):
        if time.monotonic() > deadline:
            raise SystemExit("the demo's sources did not settle")
        time.sleep(0.5)


def main(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory() as tmp,
        served_demo(Path(tmp), hostile=False) as served,
        chromium() as browser,
    ):
        served.fire("TenSafeDiskAlmostFull", "Disk on tensafe-db-0 above 90%", minutes_ago=17)
        served.fire("TenSafeHighErrorRate", "5xx above 1% for 5 minutes on tensafe-api")
        served.store_trend()
        settled(served)
        for name, (path, scheme) in SHOTS.items():
            context = browser.new_context(
                viewport=DESKTOP,
                color_scheme=scheme,
                extra_http_headers={"Authorization": basic_header()},
            )
            page = context.new_page()
            page.goto(served.url + path)
            page.screenshot(path=str(folder / name))
            context.close()
            sys.stdout.write(f"{folder / name}\n")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/img"))
