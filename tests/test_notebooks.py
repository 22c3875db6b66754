"""The tutorial notebooks: their fixed skeleton, and a papermill run of each in smoke mode.

nbval (``make test``) separately re-executes the committed notebooks and compares the
cells marked ``# NBVAL_CHECK_OUTPUT`` with the committed outputs.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest
from conftest import REPO, medmnist_dir

import fedlab as fl

NOTEBOOK_DIR = REPO / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
MAX_BYTES = 1_000_000
SMOKE_TIMEOUT_S = 600  # per cell; smoke runs take seconds, this only stops a hang

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
LOADED = re.compile(r"""fl\.data\.load\(\s*["']([\w-]+)["']""")
RENDERER = re.compile(r"""pio\.renderers\.default\s*=\s*["']plotly_mimetype["']""")
DEFINES_SMOKE = re.compile(r"^SMOKE\s*(:[^=]*)?=", re.MULTILINE)


def _read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def _tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _headings(nb) -> list[tuple[int, str]]:
    """``(cell index, heading text)`` of every level-2 markdown heading."""
    found = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            found += [(i, line[3:].strip()) for line in cell.source.splitlines()
                      if line.startswith("## ")]
    return found


def _medmnist_needed(nb) -> list[str]:
    """MedMNIST datasets the notebook loads with ``fl.data.load("<name>")``."""
    names = {m for cell in nb.cells if cell.cell_type == "code"
             for m in LOADED.findall(cell.source)}
    return sorted(n for n in names if n in fl.data.DATASETS)


def _ids(paths: list[Path]) -> list[str]:
    return [p.stem for p in paths]


def test_there_are_notebooks():
    assert NOTEBOOKS, f"no numbered notebooks in {NOTEBOOK_DIR}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
class TestSkeleton:
    """Title and objectives → setup → one parameters cell → numbered sections → summary →
    exercises; committed with small, plotly.js-free outputs."""

    def test_title_and_objectives(self, path):
        first = _read(path).cells[0]
        assert first.cell_type == "markdown", "the first cell must be the markdown title"
        assert first.source.startswith("# "), "the first cell must start with a '# ' title"
        assert re.search(r"objective", first.source, re.IGNORECASE), \
            "the title cell must state the learning objectives"
        assert re.search(r"prerequisite", first.source, re.IGNORECASE), \
            "the title cell must state the prerequisites"

    def test_one_parameters_cell_defining_smoke(self, path):
        nb = _read(path)
        tagged = [i for i, c in enumerate(nb.cells) if "parameters" in _tags(c)]
        assert len(tagged) == 1, f"need exactly one cell tagged 'parameters', found {tagged}"
        cell = nb.cells[tagged[0]]
        assert cell.cell_type == "code"
        assert DEFINES_SMOKE.search(cell.source), "the parameters cell must define SMOKE"
        sections = [i for i, text in _headings(nb) if text.startswith("1.")]
        assert sections and tagged[0] < sections[0], \
            "the parameters cell must come before section '## 1.'"
        setup = [i for i, c in enumerate(nb.cells)
                 if c.cell_type == "code" and "import fedlab as fl" in c.source]
        assert setup and setup[0] < tagged[0], \
            "a setup cell with 'import fedlab as fl' must come before the parameters cell"

    def test_sections_summary_exercises_in_order(self, path):
        headings = _headings(_read(path))
        titles = [text for _, text in headings]
        numbered = [k for k, text in enumerate(titles) if re.match(r"\d+\.\s", text)]
        assert any(t.startswith("1. ") for t in titles), "need a numbered section '## 1. ...'"
        assert "Summary" in titles, "need a '## Summary' section"
        assert "Exercises" in titles, "need a '## Exercises' section"
        summary, exercises = titles.index("Summary"), titles.index("Exercises")
        assert numbered[0] < summary < exercises, \
            f"order must be numbered sections, Summary, Exercises; got {titles}"

    def test_claims_are_checked_in_tagged_cells(self, path):
        # what the prose says about the results is asserted by `make tutorials-check`
        cells = [c for c in _read(path).cells if "claim" in _tags(c)]
        assert cells, "tag the cells that check the lesson's claims 'claim'"
        for cell in cells:
            assert cell.cell_type == "code" and "fl.claims.check(" in cell.source, \
                "a 'claim' cell calls fl.claims.check(...)"
            assert "smoke=SMOKE" in cell.source, \
                "claims are not checked in smoke mode: pass smoke=SMOKE"

    def test_plotly_renderer_is_mimetype(self, path):
        sources = [c.source for c in _read(path).cells if c.cell_type == "code"]
        assert any(RENDERER.search(s) for s in sources), \
            'set pio.renderers.default = "plotly_mimetype" in the setup cell'

    def test_small_file(self, path):
        size = path.stat().st_size
        assert size < MAX_BYTES, f"{path.name} is {size} bytes, the limit is {MAX_BYTES}"

    def test_outputs_committed_clean_and_without_scripts(self, path):
        nb = _read(path)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert any(c.get("outputs") for c in code), \
            "commit the notebook with its outputs (run `make tutorials`)"
        for i, cell in enumerate(nb.cells):
            for out in cell.get("outputs", []):
                assert out.get("output_type") != "error", \
                    f"cell {i} has a committed error output: {out.get('ename')}"
                text = json.dumps(out.get("data", {}))
                assert "<script" not in text, \
                    f"cell {i} embeds a <script> (plotly.js?); use the plotly_mimetype renderer"

    def test_kernelspec_is_python3(self, path):
        kernelspec = _read(path).metadata.get("kernelspec", {})
        assert kernelspec.get("name") == "python3", f"kernelspec is {kernelspec}"


def _smoke_params() -> list:
    params = []
    for path in NOTEBOOKS:
        marks = [pytest.mark.notebook]
        if _medmnist_needed(_read(path)):
            marks.append(pytest.mark.data)
        params.append(pytest.param(path, marks=marks, id=path.stem))
    return params


@pytest.mark.notebook
@pytest.mark.parametrize("path", _smoke_params())
def test_runs_in_smoke_mode(path, tmp_path, monkeypatch, request):
    import papermill as pm

    if request.config.getoption("nbval_lax", default=False) and path != NOTEBOOKS[0]:
        # `make test` runs nbval on the same notebooks with FEDLAB_SMOKE=1, which executes
        # every cell in smoke mode and fails on any error: running them a second time here
        # would only double the time. The first lesson still runs here, through papermill's
        # parameter injection (what `fedlab tutorials --smoke` does).
        pytest.skip("nbval executes this notebook in smoke mode in this run")
    needed = _medmnist_needed(_read(path))
    if needed:
        folder = medmnist_dir()
        missing = [n for n in needed
                   if folder is None or not (folder / fl.data.DATASETS[n].filename).exists()]
        if missing:
            pytest.skip(f"{path.name} needs MedMNIST files {missing}: set FEDLAB_DATA to a "
                        "folder holding them (or run `fedlab data download NAME`)")
        monkeypatch.setenv("FEDLAB_DATA", str(folder))  # inherited by the kernel
    out = tmp_path / path.name
    failure = None
    try:
        pm.execute_notebook(str(path), str(out), parameters={"SMOKE": True},
                            cwd=str(path.parent), kernel_name="python3", progress_bar=False,
                            execution_timeout=SMOKE_TIMEOUT_S)
    except pm.PapermillExecutionError as err:  # its message holds the cell's traceback
        failure = (f"{path.name} failed in smoke mode at cell {err.exec_count} ({err.ename}); "
                   f"executed notebook kept at {out}\n{ANSI.sub('', str(err))}")
    if failure:  # outside the except block, so the traceback is not printed twice
        pytest.fail(failure, pytrace=False)
    executed = _read(out)
    errors = [c for c in executed.cells
              if any(o.get("output_type") == "error" for o in c.get("outputs", []))]
    assert not errors, f"error outputs in {out}"
