"""Reproduce the shipped classifier on a CPU, from the weights kept in the repository.

    python -m training.recipe                 # the shipped run; again after a stop to resume it

One command, four stages, each skipped when its output is already there, so a stopped run
resumes where it was (the fine-tuning loses at most the epoch in progress):

1. ``teacher``: the starting model's outputs for every training face (training.teacher),
   computed once and saved: the self-distillation part of the targets.
2. ``finetune``: training.train from the starting weights with the recipe's targets (FER2013
   label, FER+ votes and the starting model's outputs) and the real-photo pool.
3. ``export``: training.export to models/emotion_classifier.{keras,onnx,json} (no flip view;
   int8 where measured to pay), with the recipe's neutral prior shift.
4. ``evaluate``: training.evaluate of the new model beside the starting one into
   models/candidates.md, the per-class report models/evaluation.json, and the model card.

``RECIPE`` below is the shipped run's record: the only place its settings are written.
Everything lands in --run-dir (default runs/recipe): log, hyperparameters, history, curves,
checkpoints. The run's record (its stage log, hyperparameters, history and epoch log, the files
the card is made from) is copied beside the model into ``run/`` (models/run/), since runs/ is not
kept in the repository.
"""
from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from training.data import CACHE_DIR

START = Path("models/start/emotion_classifier_gpu126.keras")
OUT = Path("models/emotion_classifier.keras")

# The shipped run: training.train's options (stage 2) and training.export's (stage 3).
RECIPE = {
    "finetune": ["--epochs", "5", "--lr", "0.005", "--batch", "128", "--label-weight", "0.25",
                 "--votes-weight", "0.5", "--teacher-weight", "0.25", "--temperature", "1",
                 "--photo-share", "0.25", "--photo-detectors", "haar,yunet", "--photo-look", "0",
                 "--seed", "20261202"],
    "neutral_shift": -0.3,
}


def stage(run_dir: Path, name: str, started: float) -> None:
    line = f"{time.strftime('%H:%M:%S')} stage {name} ({(time.time() - started) / 60:.1f} min so far)"
    print(line, flush=True)
    with open(run_dir / "recipe.log", "a") as handle:
        handle.write(line + "\n")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run-dir", type=Path, default=Path("runs/recipe"))
    p.add_argument("--start", type=Path, default=START, help="the starting weights (.keras)")
    p.add_argument("--out", type=Path, default=OUT, help="the exported model")
    p.add_argument("--cache-dir", default=CACHE_DIR)
    p.add_argument("--hardware", default="", help="for the model card: the CPU this ran on")
    args = p.parse_args(argv)
    from training import evaluate, export, model_card, teacher, train

    started = time.time()
    args.run_dir.mkdir(parents=True, exist_ok=True)
    outputs = args.run_dir / "teacher.npz"
    if not outputs.exists():
        stage(args.run_dir, "teacher", started)
        teacher.main([str(args.start), str(outputs), "--cache-dir", args.cache_dir])
    finetune = args.run_dir / "finetune"
    state = finetune / "checkpoint" / "state.json"
    epochs = int(RECIPE["finetune"][RECIPE["finetune"].index("--epochs") + 1])
    if not state.exists() or json.loads(state.read_text())["epoch"] < epochs:
        stage(args.run_dir, "finetune", started)
        resume = ["--resume"] if state.exists() else []
        train.main(["--run-dir", str(finetune), "--init", str(args.start), "--teacher", str(outputs),
                    "--cache-dir", args.cache_dir, *RECIPE["finetune"], *resume])
    stage(args.run_dir, "export", started)
    export.main([str(finetune / "model.keras"), str(args.out), "--neutral-shift", str(RECIPE["neutral_shift"]),
                 "--cache-dir", args.cache_dir])
    stage(args.run_dir, "evaluate", started)
    evaluate.main([str(args.out.with_suffix(".onnx")), str(args.start), "--out", str(args.out.parent / "candidates.md"),
                   "--report", str(args.out.parent), "--cache-dir", args.cache_dir])
    stage(args.run_dir, "card", started)  # closes the evaluate stage's time for the card
    model_card.main(["--run", str(args.run_dir), "--model", str(args.out), "--hardware", args.hardware])
    stage(args.run_dir, "done", started)
    keep_record(args.run_dir, args.out.parent / "run")


def keep_record(run_dir: Path, into: Path) -> None:
    """Copy the run's small record files (not checkpoints or teacher outputs) to ``into``."""
    for name in ("recipe.log", "finetune/hyperparameters.json", "finetune/history.csv", "finetune/log.txt"):
        (into / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(run_dir / name, into / name)


if __name__ == "__main__":
    main()
