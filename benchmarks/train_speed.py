"""Training speed of the classifier on this CPU: images/s per width, precision and batch size.

    python benchmarks/train_speed.py                       # the grid, Keras on TensorFlow
    KERAS_BACKEND=torch python benchmarks/train_speed.py   # the same on PyTorch (if installed)

Each configuration runs in its own process (a Keras dtype policy is process-wide), trains
on random 40 px faces with training.train's step (SGD + Nesterov, soft-target cross-entropy)
for --seconds after a warm-up, and prints one JSON line. Run it with nothing else on the
CPU; compare rows of one run, not runs of different machines.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def one(width: int, batch: int, precision: str, seconds: float) -> dict:
    import keras
    import numpy as np

    sys.path.insert(0, str(ROOT))
    from training.train import CROP, logits_model

    keras.mixed_precision.set_global_policy(precision)
    model = logits_model(width, 512 if width >= 64 else 256)
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9, nesterov=True),
                  loss=keras.losses.CategoricalCrossentropy(from_logits=True), jit_compile=False)
    rng = np.random.default_rng(0)
    x = rng.random((batch * 8, CROP, CROP, 1), dtype=np.float32)
    y = np.eye(7, dtype=np.float32)[rng.integers(0, 7, len(x))]
    model.fit(x[:batch * 2], y[:batch * 2], batch_size=batch, epochs=1, verbose=0)
    started, n = time.perf_counter(), 0
    while time.perf_counter() - started < seconds:
        model.fit(x, y, batch_size=batch, epochs=1, verbose=0)
        n += len(x)
    return {"backend": keras.backend.backend(), "width": width, "batch": batch, "precision": precision,
            "images_per_s": round(n / (time.perf_counter() - started), 1)}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--widths", default="32,64")
    p.add_argument("--batches", default="64,128,256")
    p.add_argument("--precisions", default="float32,mixed_bfloat16")
    p.add_argument("--seconds", type=float, default=20.0, help="timed training per configuration")
    p.add_argument("--one", nargs=3, metavar=("WIDTH", "BATCH", "PRECISION"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if args.one:
        print(json.dumps(one(int(args.one[0]), int(args.one[1]), args.one[2], args.seconds)), flush=True)
        return
    sys.path.insert(0, str(ROOT))
    from training.model_card import cpu_name

    print(json.dumps({"cpu": cpu_name(), "cores": os.cpu_count()}), flush=True)
    for width in map(int, args.widths.split(",")):
        for precision in args.precisions.split(","):
            for batch in map(int, args.batches.split(",")):
                out = subprocess.run([sys.executable, __file__, "--one", str(width), str(batch), precision,
                                      "--seconds", str(args.seconds)], capture_output=True, text=True)
                lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
                print(lines[-1] if lines else json.dumps({"width": width, "batch": batch, "precision": precision,
                                                          "error": out.stderr.strip()[-300:]}), flush=True)


if __name__ == "__main__":
    main()
