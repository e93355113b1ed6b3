"""Debian's Chromium driven by Playwright (no `playwright install`), and what every page visit
records: the requests it made (they must all stay on the service's origin), console errors and
uncaught script errors (there must be none)."""

import colorsys
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from playwright.sync_api import sync_playwright

from tests.conftest import require_binary

FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-sync",
]
AXE = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 375, "height": 812}


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """A headless Debian Chromium; skips without it (fails under CI=true)."""
    executable = require_binary("chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=FLAGS)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Recorder:
    origin: str
    refusals_expected: bool = False
    """Signing-in tests load 401 pages on purpose (Chromium logs each as a console error)."""
    requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    def attach(self, context: Any) -> None:
        context.on("request", lambda request: self.requests.append(request.url))
        context.on("console", self._console)
        context.on("weberror", lambda error: self.page_errors.append(str(error.error)))

    def _console(self, message: Any) -> None:
        if message.type != "error":
            return
        refused = "status of 401 (Unauthorized)" in message.text
        if not (refused and self.refusals_expected):
            self.console_errors.append(message.text)

    def elsewhere(self) -> list[str]:
        """Requests that left the origin (data: URLs never touch the network)."""
        return [
            url
            for url in self.requests
            if urlsplit(url).scheme != "data" and not url.startswith(self.origin + "/")
        ]

    def assert_clean(self) -> None:
        assert self.requests, "no request was recorded"
        assert not self.elsewhere(), f"requests left {self.origin}: {self.elsewhere()}"
        assert not self.console_errors, f"console errors: {self.console_errors}"
        assert not self.page_errors, f"uncaught script errors: {self.page_errors}"


def serious_violations(page: Any) -> list[str]:
    """axe-core's violations of impact serious or critical on the page as it is now."""
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at "
        + "; ".join(", ".join(node["target"]) for node in v["nodes"][:5])
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def colour_name(css: str) -> str:
    """What a person would call a computed `rgb(...)` colour: red, amber, green, blue, grey,
    or light/dark for the near-white and near-black of backgrounds."""
    numbers = css[css.index("(") + 1 : css.index(")")].replace(",", " ").split()
    r, g, b = (int(float(n)) / 255 for n in numbers[:3])
    hue, lightness, saturation = colorsys.rgb_to_hls(r, g, b)
    if lightness >= 0.9:
        return "light"
    if lightness < 0.15:
        return "dark"
    if saturation < 0.25:
        return "grey"
    degrees = hue * 360
    if degrees < 15 or degrees >= 330:
        return "red"
    if degrees < 65:
        return "amber"
    if degrees < 170:
        return "green"
    if degrees < 260:
        return "blue"
    return "purple"


def computed(locator: Any, prop: str) -> str:
    value: str = locator.evaluate(f"(el) => getComputedStyle(el).getPropertyValue('{prop}')")
    return value
