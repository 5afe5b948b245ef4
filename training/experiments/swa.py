"""Stochastic weight averaging (SWA) of a trained model, on the CPU, resumable epoch by epoch.

    python -m training.experiments.swa --source runs/gpu3/teacher0.weights.npz --data ../shared/data/fer2013 \
        --run-dir runs/swa --epochs 12
    python -m training.experiments.swa ... --resume              # after an interruption (loses < 1 epoch)
    python -m training.export runs/swa/swa.weights.npz models/emotion_classifier.keras --tta flip \
        --data ../shared/data/fer2013

Izmailov et al. 2018 (arXiv:1803.05407): continue training a converged network with SGD at a
constant learning rate and average the weights of the end of every epoch; the average sits
in a flatter, wider region of the loss than any single point, which generalises better.
Here it continues the shipped GPU model (training.experiments.gpu_train's recipe: 40 px random crops of
the 48 px faces, rotation, scale, shift, flip, random erasing; SGD with Nesterov momentum,
weight decay on kernels) on FER2013 Training only, with the same augmentation done with
OpenCV on the CPU (training.augment.random_crop_affine). After each epoch the running average gets batch-norm statistics
recomputed on training images and is scored on PublicTest (centre crop + mirror, as
served). Every epoch writes a checkpoint (SGD weights, optimizer state, running average),
so ``--resume`` loses at most the epoch in progress.

Writes into --run-dir: ``log.txt``, ``history.csv``, ``hyperparameters.json``,
``swa.weights.npz`` with ``summary.json`` (the format training.export reads) and
``checkpoint/``.
"""
from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np

from training.augment import random_crop_affine

CROP, FULL = 40, 48


def log(run_dir: Path, *parts) -> None:
    line = time.strftime("%H:%M:%S ") + " ".join(str(p) for p in parts)
    print(line, flush=True)
    with open(run_dir / "log.txt", "a") as handle:
        handle.write(line + "\n")


def centre_views(images: np.ndarray, crop: int = CROP) -> list[np.ndarray]:
    """The served views of uint8 (N, 48, 48) faces: centre crop and its mirror, float (N, crop, crop, 1)."""
    m = (images.shape[1] - crop) // 2
    centre = images[:, m:m + crop, m:m + crop].astype(np.float32)[..., None] / 255.0
    return [centre, centre[:, :, ::-1]]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", type=Path, required=True,
                   help="starting weights: NAME.weights.npz of training.experiments.gpu_train (summary.json beside it)")
    p.add_argument("--data", required=True, help="FER2013 folder (train/ and val/) or fer2013.csv")
    p.add_argument("--run-dir", type=Path, required=True, help="output folder")
    p.add_argument("--resume", action="store_true", help="continue from the run folder's last checkpoint")
    p.add_argument("--epochs", type=int, default=12, help="SWA epochs (each one is averaged)")
    p.add_argument("--lr", type=float, default=0.003, help="constant SGD learning rate")
    p.add_argument("--batch", type=int, default=128, help="batch size")
    p.add_argument("--weight-decay", type=float, default=5e-4, help="L2 on kernels (as the GPU recipe)")
    p.add_argument("--bn-batches", type=int, default=40, help="batches of 256 to recompute batch-norm statistics")
    p.add_argument("--score-last", action="store_true", help="also score the last SGD weights each epoch")
    p.add_argument("--max-steps", type=int, default=0, help="stop each epoch after this many steps (smoke runs)")
    p.add_argument("--max-samples", type=int, default=0, help="use only this many training images (smoke runs)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--cache-dir", default=str(Path.home() / ".cache" / "fer-training"),
                   help="where decoded datasets are cached ('' to disable)")
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    import keras
    import tensorflow as tf

    from training.data import load_split_cached
    from training.experiments.gpu_train import load_weights as load_gpu_weights
    from training.train import load_checkpoint, save_checkpoint

    run_dir = args.run_dir
    ckpt = run_dir / "checkpoint"
    if run_dir.exists() and not args.resume and (ckpt / "state.json").exists():
        raise SystemExit(f"{run_dir} has a checkpoint: pass --resume or choose another --run-dir")
    ckpt.mkdir(parents=True, exist_ok=True)
    (run_dir / "hyperparameters.json").write_text(json.dumps({k: str(v) for k, v in vars(args).items()}, indent=2))
    keras.utils.set_random_seed(args.seed)

    cache = args.cache_dir or None  # '' disables the cache (as training.train)
    x_train, y_train = load_split_cached(args.data, "train", cache)
    x_val, y_val = load_split_cached(args.data, "val", cache)
    if args.max_samples:
        x_train, y_train = x_train[: args.max_samples], y_train[: args.max_samples]
        x_val, y_val = x_val[: args.max_samples], y_val[: args.max_samples]
    x_train, y_train = x_train.reshape(-1, FULL, FULL), np.asarray(y_train).astype(np.int32)
    x_val, y_val = x_val.reshape(-1, FULL, FULL), np.asarray(y_val)

    model, spec = load_gpu_weights(args.source, logits=True)
    shadow, _ = load_gpu_weights(args.source, logits=True)  # holds the average for BN recompute and scoring
    optimizer = keras.optimizers.SGD(learning_rate=args.lr, momentum=0.9, nesterov=True)
    optimizer.build(model.trainable_variables)
    kernels = [v for v in model.trainable_variables if v.path.endswith("kernel")]
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function(jit_compile=False)
    def train_step(x, y):
        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            loss = loss_fn(y, logits) + 0.5 * args.weight_decay * tf.add_n([tf.reduce_sum(k * k) for k in kernels])
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    state = {"epoch": 0, "averaged": 0, "history": []}
    average = None
    if args.resume and (ckpt / "state.json").exists():
        state = load_checkpoint(ckpt, model, optimizer)
        with np.load(ckpt / "average.npz") as saved:
            average = [saved[f"arr_{i}"] for i in range(len(saved.files))]
        log(run_dir, f"resumed after epoch {state['epoch']} ({state['averaged']} averaged)")
    else:
        start = score(model, x_val, y_val)
        log(run_dir, f"start: {args.source} PublicTest centre+flip {start:.4f}")
        state["start_acc"] = start

    rng = np.random.default_rng(args.seed + 1000 * state["epoch"])
    n, bs = len(x_train), args.batch
    steps = n // bs if not args.max_steps else min(args.max_steps, n // bs)
    while state["epoch"] < args.epochs:
        t0 = time.time()
        order = rng.permutation(n)
        total = 0.0
        for i in range(steps):
            idx = order[i * bs:(i + 1) * bs]
            x = random_crop_affine(x_train[idx], rng, CROP).astype(np.float32)[..., None] / 255.0
            total += float(train_step(tf.constant(x), tf.constant(y_train[idx])))
        train_s = time.time() - t0
        weights = model.get_weights()
        k = state["averaged"]
        average = weights if average is None else [a + (w - a) / (k + 1) for a, w in zip(average, weights)]
        state["averaged"] = k + 1
        state["epoch"] += 1
        shadow.set_weights(average)
        recompute_bn(shadow, x_train, rng, args.bn_batches)
        acc = score(shadow, x_val, y_val)
        last = score(model, x_val, y_val) if args.score_last else None
        row = {"epoch": state["epoch"], "loss": round(total / steps, 4), "val_acc_swa": round(acc, 4),
               "val_acc_last": None if last is None else round(last, 4), "train_img_per_s": round(steps * bs / train_s, 1),
               "seconds": round(time.time() - t0, 1)}
        state["history"].append(row)
        log(run_dir, json.dumps(row))
        # checkpoint: SGD weights, optimizer state, running average (BN statistics recomputed)
        np.savez(ckpt / "average.npz", *average)
        np.savez(run_dir / "swa.weights.npz", *[w.astype(np.float32) for w in shadow.get_weights()])
        save_checkpoint(ckpt, model, optimizer, state)  # state.json last: the average is already saved
        write_reports(run_dir, spec, state, args)
    log(run_dir, f"done: {state['epoch']} epochs, PublicTest centre+flip {state['history'][-1]['val_acc_swa']:.4f}"
                 f" (start {state.get('start_acc', float('nan')):.4f})")


def recompute_bn(model, x_train, rng, batches: int, batch: int = 256) -> None:
    """Batch-norm statistics of averaged weights, from forward passes over augmented training
    images (the averaged network's activations differ from any single one's)."""
    import keras

    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    for layer in bns:
        layer.moving_mean.assign(np.zeros(layer.moving_mean.shape, np.float32))
        layer.moving_variance.assign(np.ones(layer.moving_variance.shape, np.float32))
    # Exact averages: accumulate each BN layer's batch moments via momentum 1 - 1/(k+1).
    for k in range(batches):
        for layer in bns:
            layer.momentum = 1.0 - 1.0 / (k + 1)
        idx = rng.integers(0, len(x_train), batch)
        x = random_crop_affine(x_train[idx], rng, CROP).astype(np.float32)[..., None] / 255.0
        model(x, training=True)
    for layer in bns:
        layer.momentum = 0.99


def score(model, x_val, y_val, batch: int = 512) -> float:
    """PublicTest accuracy of centre crop + mirror, averaged softmax (as served)."""
    total = 0
    for view in centre_views(x_val):
        logits = np.concatenate([np.asarray(model(view[i:i + batch], training=False))
                                 for i in range(0, len(view), batch)])
        e = np.exp(logits - logits.max(1, keepdims=True))
        total = total + e / e.sum(1, keepdims=True)
    return float((total.argmax(1) == np.asarray(y_val)).mean())


def write_reports(run_dir: Path, spec: dict, state: dict, args) -> None:
    rows = state["history"]
    with open(run_dir / "history.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    swa_spec = dict(spec, name="swa", swa_epochs=state["epoch"], swa_lr=args.lr, source=str(args.source))
    summary = {"teachers": [{"name": "swa", "spec": swa_spec, "epochs": state["epoch"],
                             "val_acc_center_flip": rows[-1]["val_acc_swa"], "start_acc": state.get("start_acc"),
                             "history": rows}]}
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
