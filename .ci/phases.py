"""Print CI's phase timings: the shell phases, and `make test` split by what it ran.

Usage: python .ci/phases.py PHASES.tsv JUNIT.xml. The test time is split from pytest's
JUnit report: unit tests, the notebooks' papermill smoke runs (tests/test_notebooks.py),
nbval on the committed notebooks (notebooks/), and the browser check.
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path


def group(case: ET.Element) -> str:
    where = (case.get("classname") or "") + " " + (case.get("file") or "")
    if "test_browser" in where:
        return "browser check (JupyterLab in headless Chromium)"
    if "test_notebooks" in where:
        return "notebooks: papermill smoke runs and skeleton"
    if where.strip().startswith("notebooks") or ".ipynb" in where:
        return "notebooks: nbval on committed outputs"
    return "unit tests"


def main(phases: str, junit: str) -> None:
    rows = [line.split("\t") for line in Path(phases).read_text().splitlines() if line]
    print("\nCI phases (wall seconds):")
    for name, seconds in rows:
        print(f"  {int(seconds):6d}  {name}")
    if Path(junit).exists():
        split: dict[str, float] = defaultdict(float)
        for case in ET.parse(junit).getroot().iter("testcase"):
            split[group(case)] += float(case.get("time") or 0)
        print("  make test, by part (pytest's own times, summed over its workers):")
        for name, seconds in sorted(split.items(), key=lambda kv: -kv[1]):
            print(f"  {seconds:6.0f}  - {name}")
    print(f"  {sum(int(s) for _, s in rows):6d}  total")


if __name__ == "__main__":
    main(*sys.argv[1:3])
