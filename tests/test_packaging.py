"""Ranges in pyproject.toml, exact pins in constraints.txt, repeated in environment.yml.

A library declares the versions it works with; the application (our venv, CI, the conda
environment) pins them. These tests keep the two in step.
"""

import re
from pathlib import Path

import tomllib
import yaml
from packaging.requirements import Requirement
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
META = tomllib.loads((REPO / "pyproject.toml").read_text())


def _pins(lines) -> dict[str, str]:
    pins = {}
    for line in lines:
        line = line.split("#")[0].strip()
        if line:
            assert re.fullmatch(r"[A-Za-z0-9_.\-]+==[0-9][^ ]*", line), f"not an exact pin: {line}"
            name, version = line.split("==")
            pins[name.lower()] = version
    return pins


CONSTRAINTS = _pins((REPO / "constraints.txt").read_text().splitlines())


def _declared() -> list[Requirement]:
    project = META["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    for extra in project["optional-dependencies"].values():
        reqs += [Requirement(r) for r in extra if not r.startswith(project["name"])]
    return reqs


def test_declared_dependencies_are_ranges_not_pins():
    for req in _declared():
        ops = {spec.operator for spec in req.specifier}
        assert "==" not in ops and "===" not in ops, f"{req}: a library must not pin exactly"
        assert ">=" in ops and "<" in ops, f"{req}: give a tested lower bound and an upper bound"


def test_every_declared_dependency_is_pinned_within_its_range():
    for req in _declared():
        pin = CONSTRAINTS.get(req.name.lower())
        assert pin is not None, f"{req.name} has no pin in constraints.txt"
        assert req.specifier.contains(Version(pin)), f"pin {req.name}=={pin} is outside {req}"
    names = {req.name.lower() for req in _declared()}
    assert set(CONSTRAINTS) == names, f"pins nothing declares: {set(CONSTRAINTS) - names}"
    assert CONSTRAINTS["torch"] == "2.13.0"


def test_lower_bounds_are_the_tested_versions():
    # the lower bound is the tested pin's release, down to its minor version
    for req in _declared():
        low = next(Version(s.version) for s in req.specifier if s.operator == ">=")
        pin = Version(CONSTRAINTS[req.name.lower()])
        assert low.release[:2] <= pin.release[:2], f"{req}: lower bound above the pin {pin}"


def test_environment_yml_matches_constraints():
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert pip[-1].startswith("-e ."), "environment.yml must install fedlab itself last"
    assert _pins(pip[:-1]) == CONSTRAINTS


def test_dev_extra_holds_every_other_extra():
    extras = META["project"]["optional-dependencies"]
    dev = next(r for r in extras["dev"] if r.startswith(META["project"]["name"]))
    assert set(Requirement(dev).extras) == set(extras) - {"dev"}
    assert META["project"]["scripts"]["fedlab"] == "fedlab.cli:main"
