"""The lessons in a real browser: JupyterLab in headless Chromium, driven by Playwright.

1. Lesson 00 opens with its committed outputs: every plotly output in the file renders as
   a ``.js-plotly-plot`` element, and the page logs no JavaScript error.
2. Lesson 01 runs up to its heterogeneity panel in a live kernel; moving the alpha slider
   with the keyboard re-draws the panel's label heatmap.

A screenshot of each step lands in ``build/browser/`` (not committed). Skipped, with the
reason, where Playwright or a Chromium is missing: ``.ci/run`` installs Debian's
``chromium`` (Playwright cannot download its own browsers here) and the ``[test]`` extra
brings Playwright. ``FEDLAB_CHROMIUM`` points at another Chromium binary.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import REPO, medmnist_dir

pytestmark = pytest.mark.browser

PLOTLY = "application/vnd.plotly.v1+json"
ARTIFACTS = REPO / "build" / "browser"
TOKEN = "fedlab-browser-check"
# No background traffic: this machine (and CI) has no network beyond the registries.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-dev-shm-usage"]
# JupyterLab settings for the check: render every cell (JupyterLab 4 otherwise renders
# only the cells in view), and never ask the network for news or updates.
SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false", "checkForUpdates": False},
}


def _chromium() -> str | None:
    for cand in (os.environ.get("FEDLAB_CHROMIUM"), "/usr/bin/chromium",
                 shutil.which("chromium"), shutil.which("chromium-browser")):
        if cand and Path(cand).exists():
            return cand
    return None


def _plotly_outputs(path: Path) -> int:
    nb = json.loads(path.read_text())
    return sum(PLOTLY in out.get("data", {}) for cell in nb["cells"]
               for out in cell.get("outputs", []))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server on a copy of the lessons (autosave never touches the repo)."""
    if os.environ.get("FEDLAB_REQUIRE_BROWSER") != "1":
        pytest.importorskip("playwright.sync_api", reason="Playwright is not installed "
                            "(pip install 'fedlab-workbench[test]')")
    if _chromium() is None:
        reason = "no Chromium found (apt-get install chromium, or set FEDLAB_CHROMIUM)"
        if os.environ.get("FEDLAB_REQUIRE_BROWSER") == "1":
            pytest.fail(reason + "; FEDLAB_REQUIRE_BROWSER=1 (CI) needs the browser check")
        pytest.skip(reason)
    tmp = tmp_path_factory.mktemp("lab")
    root = tmp / "notebooks"
    shutil.copytree(REPO / "notebooks", root)
    for name, value in SETTINGS.items():
        target = tmp / "settings" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(value))
    port = _free_port()
    env = {**os.environ, "JUPYTERLAB_SETTINGS_DIR": str(tmp / "settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp / "workspaces"), "FEDLAB_SMOKE": "0"}
    if medmnist_dir() is not None:
        env["FEDLAB_DATA"] = str(medmnist_dir())
    cmd = [str(Path(sys.executable).parent / "jupyter"), "lab", "--no-browser",
           f"--port={port}", "--ip=127.0.0.1", f"--ServerApp.token={TOKEN}",
           f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True"]
    if os.geteuid() == 0:
        cmd.append("--allow-root")
    log = open(tmp / "lab.log", "w")  # noqa: SIM115 - closed below
    server = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={TOKEN}", timeout=5)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("JupyterLab did not start:\n"
                                       + (tmp / "lab.log").read_text()[-3000:]) from None
                time.sleep(0.5)
        yield base, root
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@pytest.fixture
def page(lab):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=_chromium(), headless=True,
                                    args=CHROMIUM_ARGS)
        pg = browser.new_page(viewport={"width": 1400, "height": 1000})
        pg.errors = []
        pg.on("pageerror", lambda err: pg.errors.append(f"pageerror: {err}"))
        pg.on("console", lambda msg: pg.errors.append(f"console.error: {msg.text}")
              if msg.type == "error" else None)
        yield pg
        browser.close()


# The notebook panel showing ``path``, found through the app (exposed by the server flag
# --LabApp.expose_app_in_browser), not through whichever tab happens to be current.
PANEL_JS = """(path) => { for (const w of window.jupyterapp.shell.widgets('main')) {
    if (w.context && w.context.path === path) return w; } return null; }"""


def _open(page, base: str, name: str) -> None:
    # a workspace of its own, reset: no tab of another test is restored beside this one
    page.goto(f"{base}/lab/workspaces/{name.split('.')[0]}/tree/{name}?reset&token={TOKEN}")
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=120_000)


def test_lesson_00_renders_every_plotly_figure(lab, page):
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    base, root = lab
    expected = _plotly_outputs(root / "00_quickstart.ipynb")
    assert expected > 0, "lesson 00 has no committed plotly output to check"
    _open(page, base, "00_quickstart.ipynb")
    count = "document.querySelectorAll('.jp-NotebookPanel .js-plotly-plot').length"
    try:
        page.wait_for_function(f"{count} >= {expected}", timeout=90_000)
    except PlaywrightTimeout:
        pass  # reported below with the count
    page.wait_for_timeout(2000)  # late errors (a figure failing after the others)
    page.screenshot(path=str(ARTIFACTS / "00_quickstart.png"), full_page=True)
    rendered = page.evaluate(count)
    assert rendered == expected, f"{rendered} of {expected} plotly figures rendered"
    assert page.errors == [], "JavaScript errors:\n" + "\n".join(page.errors)


def test_lesson_01_panel_redraws_when_a_slider_moves(lab, page):
    if medmnist_dir() is None:
        pytest.skip("lesson 01 needs pneumoniamnist.npz (set FEDLAB_DATA)")
    base, root = lab
    cells = json.loads((root / "01_non_iid_data.ipynb").read_text())["cells"]
    panel = next(i for i, c in enumerate(cells) if c["cell_type"] == "code"
                 and "heterogeneity_panel(" in "".join(c["source"]))
    name = "01_non_iid_data.ipynb"
    _open(page, base, name)
    page.wait_for_function(f"window.jupyterapp && ({PANEL_JS})({name!r})", timeout=120_000)
    page.evaluate(f"""async ([path, index]) => {{
        const app = window.jupyterapp, panel = ({PANEL_JS})(path);
        await panel.context.ready;
        await panel.sessionContext.ready;
        app.shell.activateById(panel.id);
        panel.content.activeCellIndex = index;
        await app.commands.execute('notebook:run-all-above');
        await app.commands.execute('notebook:run-cell');
    }}""", [name, panel])
    # the panel's label heatmap, looked up afresh each time: a redraw replaces the element
    figure = (f"([path, index]) => {{ const node = ({PANEL_JS})(path).content"
              ".widgets[index].node; const gd = node.querySelector('.js-plotly-plot');"
              " return gd && gd.data ? JSON.stringify(gd.data) : null; }")
    try:
        page.wait_for_function(figure, arg=[name, panel], timeout=240_000)
    finally:
        page.screenshot(path=str(ARTIFACTS / "01_panel_before.png"))
    before = page.evaluate(figure, [name, panel])
    page.evaluate(f"""([path, index]) => ({PANEL_JS})(path).content.widgets[index]
                  .node.scrollIntoView()""", [name, panel])
    handle = page.locator(".jp-NotebookPanel .widget-slider .noUi-handle").first  # alpha
    handle.focus()
    for _ in range(5):  # five steps of 0.1 in log10(alpha): alpha x 3.2
        handle.press("ArrowRight")
    page.wait_for_function(f"([path, index, old]) => ({figure})([path, index]) !== old",
                           arg=[name, panel, before], timeout=120_000)
    page.screenshot(path=str(ARTIFACTS / "01_panel_after.png"))
    after = page.evaluate(figure, [name, panel])
    assert after is not None and after != before
    assert page.errors == [], "JavaScript errors:\n" + "\n".join(page.errors)
