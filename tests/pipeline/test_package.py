"""`pip install -e .` makes the package importable from any folder: the README's in-process
example runs, as written, in a fresh virtual environment, from a folder outside the repository."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

from tests.helpers import FIXTURES, ROOT


def readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(r"<!-- in-process example[^\n]*-->\n```python\n(.*?)```", text, re.S)
    assert match, "the README's in-process example is marked with <!-- in-process example ... -->"
    return match.group(1)


def test_the_readme_example_runs_from_any_folder_after_pip_install_e(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    # This environment's packages (numpy, onnxruntime, Keras, pip ...), but not this project.
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    with open(os.path.join(site, "packages.pth"), "w") as pth:
        pth.writelines(path + "\n" for path in sys.path if path.endswith("site-packages"))
    env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_CONFIG_FILE": os.devnull, "PYTHONPATH": ""}
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    before = subprocess.run([str(python), "-c", "import emotionlib"], cwd=folder, env=env, capture_output=True)
    assert before.returncode != 0  # not importable before the install
    install = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                              "-e", str(ROOT)], cwd=folder, env=env, capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stdout + install.stderr
    (folder / "tests" / "fixtures").mkdir(parents=True)  # the example names the repository's photo
    shutil.copyfile(FIXTURES / "obama.jpg", folder / "tests" / "fixtures" / "obama.jpg")
    run = subprocess.run([str(python), "-c", readme_example()], cwd=folder, env=env, capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    [line] = run.stdout.strip().splitlines()
    assert line.startswith("Box(x=") and " happy " in line
