"""The built site in a real browser: ``fedlab site`` into a temporary folder, served on
127.0.0.1, every page opened in headless Chromium (Playwright).

On every page: no JavaScript error and no request to another host. On each lesson page:
as many drawn plotly figures (each holding at least one trace) as the notebook has plotly
outputs. The API page of ``fedlab`` documents ``fedlab.run``. A screenshot of each page
lands in ``build/site-browser/`` (not committed). A second test breaks one figure output
of a lesson on purpose and checks that the same checks catch it.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import threading
from pathlib import Path
from urllib.parse import urlparse

import pytest
from conftest import REPO
from test_browser import CHROMIUM_ARGS, _chromium, _plotly_outputs

pytestmark = pytest.mark.browser

ARTIFACTS = REPO / "build" / "site-browser"
# a figure counts when plotly drew it with data in it
DRAWN = ("Array.from(document.querySelectorAll('div.fedlab-plotly.js-plotly-plot'))"
         ".filter(gd => gd.data && gd.data.length > 0).length")


def _needs_browser():
    required = os.environ.get("FEDLAB_REQUIRE_BROWSER") == "1"  # CI: fail, never skip
    for module, extra in (("mkdocs", "docs"), ("playwright.sync_api", "test")):
        try:
            __import__(module)
        except ImportError:
            reason = f"{module} is not installed (pip install 'fedlab-workbench[{extra}]')"
            pytest.fail(reason) if required else pytest.skip(reason)
    if _chromium() is None:
        reason = "no Chromium found (apt-get install chromium, or set FEDLAB_CHROMIUM)"
        pytest.fail(reason) if required else pytest.skip(reason)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep the test's output clean
        pass


def _serve(root: Path):
    handler = functools.partial(_Quiet, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def check_site(site: Path, lessons: Path, shots: Path | None = None) -> tuple[int, list[str]]:
    """Open every page of ``site``; returns (pages checked, problems found)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    pages = sorted(p.relative_to(site).as_posix() for p in site.rglob("*.html")
                   if p.name != "404.html")
    problems: list[str] = []
    server, base = _serve(site)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=_chromium(), headless=True,
                                         args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            seen: list[str] = []
            page.on("pageerror", lambda err: seen.append(f"pageerror: {err}"))
            page.on("console", lambda msg: seen.append(f"console.error: {msg.text}")
                    if msg.type == "error" else None)
            page.on("request", lambda req: seen.append(f"request to {req.url}")
                    if urlparse(req.url).hostname not in ("127.0.0.1", None) else None)
            for rel in pages:
                seen.clear()
                page.goto(f"{base}/{rel}", wait_until="load")
                if rel == "index.html":  # the search box finds a lesson
                    page.fill("input.md-search__input", "FedProx")
                    try:
                        page.wait_for_selector(".md-search-result__item", timeout=15_000)
                    except PlaywrightTimeout:
                        problems.append("index.html: the search for FedProx found nothing")
                    page.keyboard.press("Escape")
                if rel.startswith("lessons/"):
                    want = _plotly_outputs(lessons / Path(rel).with_suffix(".ipynb").name)
                    try:
                        page.wait_for_function(f"{DRAWN} >= {want}", timeout=30_000)
                    except PlaywrightTimeout:
                        pass  # reported below with the count
                    page.wait_for_timeout(500)  # a figure failing after the others
                    drawn = page.evaluate(DRAWN)
                    if drawn != want:
                        problems.append(f"{rel}: {drawn} of {want} plotly figures drawn")
                if shots is not None:
                    if rel.startswith("lessons/") and page.locator("div.fedlab-plotly").count():
                        page.locator("div.fedlab-plotly").first.scroll_into_view_if_needed()
                    shots.mkdir(parents=True, exist_ok=True)
                    page.screenshot(path=str(shots / (rel.replace("/", "_") + ".png")))
                problems += [f"{rel}: {s}" for s in seen]
            browser.close()
    finally:
        server.shutdown()
    return len(pages), problems


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    _needs_browser()
    from fedlab.site import build

    out = tmp_path_factory.mktemp("site") / "site"
    return out, build(out)


def test_site_renders_every_page_offline(site):
    out, built = site
    assert built["pages"] >= 9 + 1 + 10  # home, the lessons, the API pages
    n, problems = check_site(out, REPO / "notebooks", ARTIFACTS)
    assert n == built["pages"]
    assert problems == [], "\n".join(problems)
    api = (out / "api" / "fedlab.html").read_text()
    assert 'id="fedlab.run"' in api, "the API page of fedlab does not document fedlab.run"
    home = (out / "index.html").read_text()
    assert 'href="lessons/00_quickstart.html"' in home  # the lesson table links the pages
    lesson = (out / "lessons" / "02_strategies.html").read_text()
    assert "Run this lesson yourself" in lesson and "Learning objectives" in lesson


def test_the_check_catches_a_broken_figure(tmp_path):
    _needs_browser()
    from fedlab.site import PLOTLY, build

    lessons = tmp_path / "notebooks"
    lessons.mkdir()
    nb = json.loads((REPO / "notebooks" / "00_quickstart.ipynb").read_text())
    out = next(o for c in nb["cells"] for o in c.get("outputs", [])
               if PLOTLY in o.get("data", {}))
    out["data"][PLOTLY] = {"layout": {"title": {"text": "a figure without data"}}}
    (lessons / "00_quickstart.ipynb").write_text(json.dumps(nb))
    shutil.copy(REPO / "README.md", tmp_path / "README.md")
    build(tmp_path / "site", repo=REPO, notebooks=lessons, api=False)
    # the checker counts from the original lesson: the broken output must be caught
    _, problems = check_site(tmp_path / "site", REPO / "notebooks")
    assert any("of 6 plotly figures drawn" in p for p in problems), problems
