"""The pins live in requirements*.txt; environment.yml and pyproject must agree."""

import re
from pathlib import Path

import tomllib
import yaml

REPO = Path(__file__).resolve().parents[1]


def _pins(*files):
    pins = {}
    for f in files:
        for line in (REPO / f).read_text().splitlines():
            line = line.split("#")[0].strip()
            if line:
                name, version = line.split("==")
                pins[name.lower()] = version
    return pins


def test_every_requirement_is_pinned_exactly():
    for f in ("requirements.txt", "requirements-dev.txt"):
        for line in (REPO / f).read_text().splitlines():
            line = line.split("#")[0].strip()
            assert not line or re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[0-9][^ ]*", line), line
    assert _pins("requirements.txt")["torch"] == "2.13.0"


def test_environment_yml_matches_pins():
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    listed = {}
    for item in pip:
        if item.startswith("-e"):
            continue
        name, version = item.split("==")
        listed[name.lower()] = version
    assert listed == _pins("requirements.txt", "requirements-dev.txt")


def test_pyproject_reads_requirements():
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert meta["project"]["name"] == "fedlab-workbench"
    assert meta["tool"]["setuptools"]["dynamic"]["dependencies"]["file"] == ["requirements.txt"]
    assert meta["project"]["scripts"]["fedlab"] == "fedlab.cli:main"
