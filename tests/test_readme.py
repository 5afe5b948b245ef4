"""The README is a reference: the commands it gives name files, modules, options and make
targets that exist, and its error table names every error code the service answers with.
(Its configuration table: tests/serving/test_settings.py; its in-process example runs in
tests/pipeline/test_package.py.)"""
from __future__ import annotations

import importlib.util
import re

from tests.helpers import ROOT

README = (ROOT / "README.md").read_text()


def commands() -> list[str]:
    """Every command line of the README: lines of its bash/console blocks and inline `...`."""
    blocks = re.findall(r"```(?:bash|console)\n(.*?)```", README, re.S)
    lines = [line.split("  #")[0].strip().lstrip("$ ") for block in blocks for line in block.splitlines()]
    inline = re.findall(r"`((?:make|python|\.venv/bin/python|curl|pip|kubectl|bentoml) [^`]+)`", README)
    return [line for line in lines + inline if line]


def test_commands_name_what_exists():
    seen = set()
    makefile = (ROOT / "Makefile").read_text()
    for line in commands():
        for target in re.findall(r"^make ([\w-]+)", line):
            assert re.search(rf"^{re.escape(target)}:", makefile, re.M), line
            seen.add("make")
        for module, rest in re.findall(r"python -m ([\w.]+)(.*)", line):
            spec = importlib.util.find_spec(module)
            assert spec is not None, line
            source = open(spec.origin).read()
            for option in re.findall(r"(--[\w-]+)", rest):
                assert f'"{option}"' in source, f"{module} has no option {option}: {line}"
            seen.add("module")
        for script, rest in re.findall(r"python (\S+\.py)(.*)", line):
            source = (ROOT / script).read_text()
            for option in re.findall(r"(--[\w-]+)", rest):
                assert f'"{option}"' in source, f"{script} has no option {option}: {line}"
            seen.add("script")
        for path in re.findall(r"(?:@|-r |-f |--model )((?:tests|docs|requirements|benchmarks|deploy)/\S*?)[\"'\s]",
                               line + " "):
            assert (ROOT / path).exists(), line
            seen.add("path")
    assert seen == {"make", "module", "script", "path"}


def test_every_error_code_is_in_the_error_table():
    from emotionlib.serving.errors import FOREIGN_CODES, STATUS

    table = README[README.index("### Errors"):README.index("## Configuration")]
    missing = sorted(code for code in {*STATUS, *FOREIGN_CODES.values()} if f"`{code}`" not in table)
    assert missing == []
