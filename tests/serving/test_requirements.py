"""Requirements install anywhere: pinned packages from the package index, no local paths."""
from __future__ import annotations

import re

import pytest
import yaml

from tests.helpers import ROOT

FILES = sorted({p for pattern in ("*requirements*.txt", "requirements/*.txt") for p in ROOT.rglob(pattern)
                if not {".venv", "runs", "node_modules", "build"} & set(p.parts)})
PIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9,._-]+\])?==[A-Za-z0-9.+!_-]+"
                 r"(\s*;\s*sys_platform\s*[!=]=\s*\"[a-z0-9]+\")?$")
INCLUDE = re.compile(r"^-(r|c)\s+(\S+)$")


def local_path_problem(line: str) -> str | None:
    """Why a requirements line depends on this machine's files (None if it does not)."""
    lowered = line.lower()
    if "file:" in lowered:
        return "a file: URL"
    if re.search(r"(^|[\s@=])(/|~|\.{1,2}/|[a-z]:\\)", lowered) and not INCLUDE.match(line):
        return "a local path"
    if lowered.startswith(("--find-links", "-f ", "--index-url", "-i ", "--extra-index-url", "-e ", "--editable")):
        return "an index, link or editable option (install from the public index by name)"
    if re.search(r"\.(whl|tar\.gz|zip)\b", lowered):
        return "a package file"
    return None


def requirement_lines(path):
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split(" #")[0].strip()
        if line and not line.startswith("#"):
            yield number, line


def test_the_files_exist():
    names = {p.relative_to(ROOT).as_posix() for p in FILES}
    assert {"requirements/serve.txt", "requirements/test.txt", "requirements/train.txt",
            "benchmarks/requirements.txt"} <= names


@pytest.mark.parametrize("path", FILES, ids=[p.relative_to(ROOT).as_posix() for p in FILES])
def test_pinned_and_no_local_paths(path):
    for number, line in requirement_lines(path):
        where = f"{path.relative_to(ROOT)}:{number}: {line!r}"
        assert local_path_problem(line) is None, f"{where} names {local_path_problem(line)}"
        include = INCLUDE.match(line)
        if include:
            assert (path.parent / include.group(2)).is_file(), f"{where}: no such file"
        else:
            assert PIN.match(line), f"{where} is not pinned as name==version"


@pytest.mark.parametrize("line", [
    "torch @ file:///opt/wheels/torch-2.13.0+cpu-cp311-cp311-linux_x86_64.whl",
    "/opt/wheels/torch-2.13.0-cp311-cp311-linux_x86_64.whl",
    "./vendor/pkg",
    "../pkg",
    "--find-links /opt/wheels",
    "-e .",
    "pkg @ https://example.com/pkg-1.0.tar.gz",
])
def test_local_paths_are_caught(line):
    assert local_path_problem(line) is not None


@pytest.mark.parametrize("line", ["numpy==2.4.6", "-r serve.txt", "opencv-python-headless==4.14.0.94"])
def test_ordinary_lines_pass(line):
    assert local_path_problem(line) is None


def test_the_bento_installs_the_serving_file():
    config = yaml.safe_load((ROOT / "bentofile.yaml").read_text())
    assert config["python"]["requirements_txt"].lstrip("./") == "requirements/serve.txt"
    assert {"name": "BENTOML_DO_NOT_TRACK", "value": "true"} in config["envs"]


def pins(name: str) -> dict[str, str]:
    """package -> pinned version in requirements/<name>, following -r includes (this platform's lines)."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    out = {}
    path = ROOT / "requirements" / name
    for _, line in requirement_lines(path):
        include = INCLUDE.match(line)
        if include:
            out.update(pins(include.group(2)))
            continue
        requirement = Requirement(line)
        if requirement.marker is None or requirement.marker.evaluate():
            out[canonicalize_name(requirement.name)] = str(requirement.specifier).removeprefix("==")
    return out


PINNED_BY = {"dependencies": "serve.txt", "serve": "serve.txt", "convert": "import.txt", "train": "train.txt",
             "test": "test.txt"}


def test_pyproject_ranges_hold_the_pins():
    """Every dependency pyproject.toml names (the package and each extra) is pinned in the
    requirements file that installs it, inside the range pyproject.toml gives."""
    import tomllib

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    groups = {"dependencies": project["dependencies"], **project["optional-dependencies"]}
    assert set(groups) == set(PINNED_BY)
    for group, lines in groups.items():
        pinned = pins(PINNED_BY[group])
        for line in lines:
            requirement = Requirement(line)
            name = canonicalize_name(requirement.name)
            if name == canonicalize_name(project["name"]) or not (requirement.marker is None
                                                                  or requirement.marker.evaluate()):
                continue
            assert name in pinned, f"{group}: {name} is not pinned in requirements/{PINNED_BY[group]}"
            assert requirement.specifier.contains(pinned[name], prereleases=True), \
                f"{group}: {name}=={pinned[name]} (requirements/{PINNED_BY[group]}) is outside {requirement.specifier}"
