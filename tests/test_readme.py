"""The README is a reference: the commands it gives name files, modules, options and make
targets that exist, every file its examples name is in the repository, its error table names
every error code the service answers with, and its pictures and example answer are what the
bundled model gives (make pictures). (Its configuration table: tests/serving/test_settings.py;
its in-process example runs in tests/pipeline/test_package.py, the others against a real
server in tests/e2e/test_readme_examples.py.)"""
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


def code_blocks() -> str:
    return "\n".join(re.findall(r"```(?:bash|console|python)\n(.*?)```", README, re.S))


def test_every_file_an_example_names_is_in_the_repository():
    named = re.findall(r'(?:@|Path\(|open\(|video\()"?([\w./-]+\.(?:jpg|jpeg|png|mp4))', code_blocks())
    assert len(named) >= 8 and {"tests/fixtures/obama.jpg", "docs/face-crop.jpg", "docs/group.jpg",
                                "docs/clip.mp4"} <= set(named)
    missing = sorted({path for path in named if not (ROOT / path).is_file()})
    assert missing == []
    pictures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", README)
    assert pictures and all((ROOT / picture).is_file() for picture in pictures)


def test_pictures_and_the_example_answer_are_the_bundled_models():
    """docs/examples.py's files and the README's answer for obama.jpg, made again with the
    bundled model, are the committed ones: the pixels of the JPEGs within JPEG noise, the answer
    to the character. When the model changes: make pictures."""
    import importlib.util
    import io

    import numpy as np
    from PIL import Image

    from emotionlib import EmotionPipeline

    spec = importlib.util.spec_from_file_location("examples", ROOT / "docs" / "examples.py")
    examples = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(examples)
    for path, data in examples.made(EmotionPipeline.from_model(threads=1)).items():
        committed = (ROOT / path).read_bytes()
        if path.endswith(".mp4"):  # drawn and encoded the same way every time
            assert data == committed, f"{path} is not what docs/examples.py makes: run make pictures"
        elif path.endswith(".jpg"):
            pixels = [np.asarray(Image.open(io.BytesIO(d)).convert("RGB"), np.int16) for d in (data, committed)]
            # a different label (another emotion or confidence) moves some pixels by far more than
            # JPEG's own noise; the same one moves none
            assert pixels[0].shape == pixels[1].shape and np.abs(pixels[0] - pixels[1]).max() < 64, \
                f"{path} is not what the bundled model gives: run make pictures"
        else:
            assert data.decode() == committed.decode(), f"{path}'s example answer is not the bundled model's: " \
                                                        "run make pictures"


def test_every_error_code_is_in_the_error_table():
    from emotionlib.serving.errors import FOREIGN_CODES, STATUS

    table = README[README.index("### Errors"):README.index("## Configuration")]
    missing = sorted(code for code in {*STATUS, *FOREIGN_CODES.values()} if f"`{code}`" not in table)
    assert missing == []
