"""A static site of the README, the lessons and the API reference, readable anywhere.

``fedlab site --out site`` (``make site``) builds it with `MkDocs <https://www.mkdocs.org>`_
and the Material theme: the README is the home page, each committed lesson a page with
its outputs (rendered by mkdocs-jupyter, never executed), each public namespace an API
page generated from its docstrings by mkdocstrings (which reads the source with griffe,
without importing torch). MkDocs rather than Sphinx: the README and the lessons are
Markdown already, the build needs no import of the package, and Material's search runs
in the browser from a local index.

What this module adds of its own is the staging: a copy of each lesson whose plotly
outputs (stored as ``application/vnd.plotly.v1+json``, which no static converter draws)
become a ``<div class="fedlab-plotly">`` holding the figure's JSON, drawn in the browser
by ``assets/figures.js`` with the plotly.js of the installed ``plotly`` package, copied
once into the site. Nothing is fetched from another host: no fonts, no require.js, no
widget manager (a lesson's live widgets show their text fallback), no MathJax.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

__all__ = ["build", "API_PAGES", "PLOTLY"]

PLOTLY = "application/vnd.plotly.v1+json"
WIDGET = "application/vnd.jupyter.widget-view+json"

#: API pages: title -> the namespace documented on it
API_PAGES = {
    "fedlab": "fedlab", "data": "fedlab.data", "strategies": "fedlab.strategies",
    "topologies": "fedlab.topologies", "executors": "fedlab.executors",
    "comm": "fedlab.comm", "privacy": "fedlab.privacy", "attacks": "fedlab.attacks",
    "explain": "fedlab.explain", "viz": "fedlab.viz", "widgets": "fedlab.widgets",
    "segmentation": "fedlab.segmentation", "reconstruction": "fedlab.reconstruction",
    "imaging": "fedlab.imaging", "metrics": "fedlab.metrics",
    "models": "fedlab.models", "claims": "fedlab.claims",
}

# Draws every staged figure once plotly.js has loaded (both are extra_javascript, which
# Material loads in order at the end of each page).
FIGURES_JS = """\
document.querySelectorAll("div.fedlab-plotly").forEach(function (div) {
  var fig = JSON.parse(div.getAttribute("data-figure"));
  Plotly.newPlot(div, fig.data || [], fig.layout || {}, {responsive: true});
});
"""


def _lesson_note(name: str, nb: dict) -> dict:
    seconds = nb.get("metadata", {}).get("fedlab", {}).get("run_seconds")
    took = (f"Its last execution at the teaching defaults took **{seconds:.0f} s** "
            f"(`fedlab tutorials`, recorded in the notebook)." if seconds else
            "Its run time at the teaching defaults is given in the lesson's first cell.")
    text = (f"> **Run this lesson yourself.** This page shows the lesson as committed, "
            f"with its outputs. To run it: `make lab` (JupyterLab on `notebooks/`), open "
            f"`{name}` and choose *Run ▸ Run All Cells*; or execute it headless with "
            f"`fedlab tutorials {name[:2]}`. {took}\n")
    return {"cell_type": "markdown", "metadata": {}, "source": text}


def stage_lesson(src: Path, dst: Path) -> int:
    """Copy the lesson ``src`` to ``dst`` for the site; returns its number of figures.

    Each plotly output gains an HTML form (a div with the figure's JSON), widget views
    keep only their text, and the notebook's widget state is dropped."""
    nb = json.loads(src.read_text())
    nb.get("metadata", {}).pop("widgets", None)
    figures = 0
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            data.pop(WIDGET, None)
            if PLOTLY in data:
                fig = json.dumps(data.pop(PLOTLY), separators=(",", ":"))
                data["text/html"] = (f'<div class="fedlab-plotly" '
                                     f'data-figure="{html.escape(fig, quote=True)}"></div>')
                figures += 1
    nb["cells"].insert(1, _lesson_note(src.name, nb))
    dst.write_text(json.dumps(nb))
    return figures


def _home(readme: Path, lessons: list[str]) -> str:
    text = readme.read_text()
    for name in lessons:  # the lesson table links to the site's pages
        text = text.replace(f"](notebooks/{name})", f"](lessons/{name})")
        text = text.replace(f"](site/lessons/{name[:-6]}.html)", f"](lessons/{name})")
    # other links into the repository have no page here: keep their text
    return re.sub(r"(?<!!)\[([^\]]+)\]\((?!https?://|#|lessons/)[^)]+\)", r"\1", text)


def _api_page(title: str, module: str) -> str:
    options = ("    options:\n      show_submodules: false\n      members_order: source\n"
               "      docstring_style: numpy\n      show_source: false\n"
               "      show_root_heading: true\n      heading_level: 1\n")
    return f"::: {module}\n{options}"


def _config(stage: Path, out: Path, repo: Path, lessons: list[str], api: bool) -> dict:
    nav = [{"Home": "index.md"},
           {"Lessons": [f"lessons/{n}" for n in lessons]}]
    plugins = ["search", {"mkdocs-jupyter": {"execute": False, "include_requirejs": False,
                                             "ignore_h1_titles": False}}]
    if api:
        nav.append({"API reference": [{t: f"api/{t}.md"} for t in API_PAGES]})
        roles = f"{Path(__file__).with_name('site_roles.py')}:RestRoles"
        plugins.append({"mkdocstrings": {"handlers": {"python": {
            "paths": [str(repo)], "options": {"extensions": [roles]}}}}})
    return {
        "site_name": "fedlab", "site_description": "Federated learning for medical imaging, "
        "in notebooks", "docs_dir": str(stage / "docs"), "site_dir": str(out),
        "use_directory_urls": False, "theme": {"name": "material", "font": False},
        "plugins": plugins, "nav": nav,
        "markdown_extensions": ["tables", "admonition", "toc", "pymdownx.details",
                                "pymdownx.superfences", "md_in_html"],
        "extra_javascript": ["assets/plotly.min.js", "assets/figures.js"],
    }


def build(out: str | Path = "site", repo: str | Path | None = None,
          notebooks: str | Path | None = None, api: bool = True,
          quiet: bool = True) -> dict:
    """Build the site into ``out``; returns ``{"pages": n, "figures": {lesson: n}}``.

    Parameters
    ----------
    out : path
        The folder the site is written to (replaced).
    repo : path, optional
        The repository: its README and, by default, its ``notebooks/`` (default: the
        checkout this package lives in).
    notebooks : path, optional
        Another folder of lessons (``NN_name.ipynb``) to build instead.
    api : bool
        Whether to build the API reference pages (False: a quicker site of the lessons).
    quiet : bool
        Show only MkDocs' warnings and errors.
    """
    import plotly
    import yaml

    repo = Path(repo) if repo else Path(__file__).resolve().parent.parent
    source = Path(notebooks) if notebooks else repo / "notebooks"
    out = Path(out).resolve()
    stage = repo / "build" / "site-src" if notebooks is None else out.parent / "site-src"
    shutil.rmtree(stage, ignore_errors=True)
    (stage / "docs" / "lessons").mkdir(parents=True)
    (stage / "docs" / "assets").mkdir()
    lessons = sorted(p.name for p in source.glob("[0-9][0-9]_*.ipynb"))
    if not lessons:
        raise ValueError(f"notebooks: no lesson NN_name.ipynb in {source}")
    figures = {n: stage_lesson(source / n, stage / "docs" / "lessons" / n) for n in lessons}
    (stage / "docs" / "index.md").write_text(_home(repo / "README.md", lessons))
    if api:
        (stage / "docs" / "api").mkdir()
        for title, module in API_PAGES.items():
            (stage / "docs" / "api" / f"{title}.md").write_text(_api_page(title, module))
    shutil.copy(Path(plotly.__file__).parent / "package_data" / "plotly.min.js",
                stage / "docs" / "assets" / "plotly.min.js")
    (stage / "docs" / "assets" / "figures.js").write_text(FIGURES_JS)
    config = stage / "mkdocs.yml"
    config.write_text(yaml.safe_dump(_config(stage, out, repo, lessons, api), sort_keys=False))
    cmd = [sys.executable, "-m", "mkdocs", "build", "--clean", "-f", str(config)]
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}  # Material's notice about MkDocs 2
    subprocess.run(cmd + (["--quiet"] if quiet else []), check=True, cwd=stage, env=env)
    pages = sum(1 for p in out.rglob("*.html") if p.name != "404.html")
    return {"pages": pages, "figures": figures}
