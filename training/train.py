"""Train an emotion classifier on FER2013.

    python -m training.train --data ../shared/data/fer2013 --run-dir runs/vggnet
    python -m training.train --data ../shared/data/fer2013 --run-dir runs/vggnet --resume

Trains on the ``train`` split only; the ``val`` split (PublicTest) drives model selection,
early stopping and the learning-rate schedule. Seeded. Every epoch writes a resumable
checkpoint; the run folder gets hyperparameters.json, history.csv, curves.png,
best.keras (highest val accuracy) and evaluation.json for it.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import numpy as np

from emotionlib.labels import FER2013_LABELS
from emotionlib.preprocess import SCALINGS, preprocess_batch
from training.augment import random_affine
from training.data import load_split_cached
from training.models import MODEL_NAMES

HYPERPARAMETERS = "hyperparameters.json"
CHECKPOINT = "checkpoint.keras"
STATE = "state.json"
BEST = "best.keras"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="FER2013 folder (with train/ and val/) or fer2013.csv")
    p.add_argument("--val-data", help="validation source if not --data (folder or csv)")
    p.add_argument("--run-dir", required=True, help="output folder for this run")
    p.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its last checkpoint")
    p.add_argument("--model", choices=MODEL_NAMES, default="vggnet", help="architecture (see training/models.py)")
    p.add_argument("--weights", default="none", help="vgg19 only: none, imagenet or a path to no-top weights")
    p.add_argument("--width", type=int, default=32, help="vggnet: filters of the first block (doubles per block)")
    p.add_argument("--size", type=int, default=48, help="input side in pixels")
    p.add_argument("--channels", type=int, choices=(1, 3), default=None, help="input channels (default: 1, 3 for vgg19)")
    p.add_argument("--scaling", choices=SCALINGS, default="unit", help="pixel scaling of the inputs")
    p.add_argument("--epochs", type=int, default=40, help="maximum number of epochs")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (Adam)")
    p.add_argument("--weight-decay", type=float, default=1e-4, help="AdamW decoupled weight decay")
    p.add_argument("--schedule", choices=("cosine", "plateau"), default="cosine",
                   help="cosine: warmup then cosine decay over --epochs; plateau: reduce on val_loss plateau")
    p.add_argument("--warmup-epochs", type=int, default=2)
    p.add_argument("--patience", type=int, default=10, help="early stopping patience (epochs) on val_accuracy")
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--rotation", type=float, default=10.0, help="max rotation, degrees")
    p.add_argument("--zoom", type=float, default=0.1, help="max zoom, fraction")
    p.add_argument("--shift", type=float, default=0.1, help="max shift, fraction of the side")
    p.add_argument("--no-flip", action="store_true", help="disable horizontal flips")
    p.add_argument("--fine-tune-epochs", type=int, default=10,
                   help="vgg19 with pretrained weights: epochs with the base unfrozen after the frozen phase")
    p.add_argument("--fine-tune-lr", type=float, default=1e-5, help="learning rate of the unfrozen phase")
    p.add_argument("--max-samples", type=int, default=None, help="use only this many training images (smoke runs)")
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--cache-dir", default=os.path.expanduser("~/.cache/fer-training"),
                   help="where decoded datasets are cached as .npz ('' to disable)")
    p.add_argument("--verbose", type=int, default=1, help="Keras verbosity: 1 progress bar, 2 a line per epoch")
    return p.parse_args(argv)


def make_sequence(images, labels, args, epoch_offset: int = 0):
    """A keras.utils.PyDataset that shuffles, augments and preprocesses each batch."""
    import keras

    class FerBatches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.epoch = epoch_offset
            self._shuffle()

        def _shuffle(self):
            self.rng = np.random.default_rng([args.seed, self.epoch])
            self.order = self.rng.permutation(len(images))

        def __len__(self):
            return math.ceil(len(images) / args.batch_size)

        def __getitem__(self, index):
            idx = self.order[index * args.batch_size:(index + 1) * args.batch_size]
            batch = random_affine(images[idx], self.rng, args.rotation, args.zoom, args.shift,
                                  flip=not args.no_flip)
            return preprocess_batch(batch, args.size, args.channels, args.scaling), labels[idx]

        def on_epoch_end(self):
            self.epoch += 1
            self._shuffle()

    return FerBatches()


def lr_at(epoch: int, args) -> float:
    """Linear warmup then cosine decay to 1% of the peak, as a function of the epoch."""
    if epoch < args.warmup_epochs:
        return args.lr * (epoch + 1) / (args.warmup_epochs + 1)
    progress = (epoch - args.warmup_epochs) / max(1, args.epochs - args.warmup_epochs)
    return args.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def compile_model(model, args, lr: float):
    import keras

    model.compile(
        optimizer=keras.optimizers.AdamW(learning_rate=lr, weight_decay=args.weight_decay),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=args.label_smoothing),
        metrics=["accuracy"],
    )


def build(args):
    from training.models import build_model

    shape = (args.size, args.size, args.channels)
    if args.model == "vggnet":
        return build_model("vggnet", shape, len(FER2013_LABELS), width=args.width)
    weights = None if args.weights == "none" else args.weights
    return build_model("vgg19", shape, len(FER2013_LABELS), weights=weights)


def train(args) -> Path:
    if args.channels is None:
        args.channels = 3 if args.model == "vgg19" else 1
    run_dir = Path(args.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    hp_path = run_dir / HYPERPARAMETERS
    if args.resume and hp_path.exists():
        saved = json.loads(hp_path.read_text())
        keep = {"run_dir", "resume", "verbose", "epochs", "cache_dir", "data", "val_data", "patience"}
        for key, value in saved.items():
            if key not in keep:
                setattr(args, key, value)
    import keras

    keras.utils.set_random_seed(args.seed)
    hp = {k: v for k, v in vars(args).items()}
    hp["backend"] = keras.backend.backend()
    hp["keras_version"] = keras.__version__
    hp["labels"] = list(FER2013_LABELS)
    hp_path.write_text(json.dumps(hp, indent=2))

    cache = args.cache_dir or None
    x_train, y_train = load_split_cached(args.data, "train", cache)
    x_val, y_val = load_split_cached(args.val_data or args.data, "val", cache)
    if args.max_samples:
        pick = np.random.default_rng(args.seed).permutation(len(x_train))[: args.max_samples]
        x_train, y_train = x_train[pick], y_train[pick]
    num_classes = len(FER2013_LABELS)
    y_train_1h = np.eye(num_classes, dtype=np.float32)[y_train]
    val = (preprocess_batch(x_val, args.size, args.channels, args.scaling),
           np.eye(num_classes, dtype=np.float32)[y_val])
    print(f"train {len(x_train)} images, val {len(x_val)} images, backend {hp['backend']}", flush=True)

    state_path = run_dir / STATE
    state = {"epoch": 0, "best": None, "wait": 0, "phase": "main"}
    if args.resume and (run_dir / CHECKPOINT).exists():
        state = json.loads(state_path.read_text())
        model = keras.models.load_model(run_dir / CHECKPOINT)
        print(f"resumed from {run_dir / CHECKPOINT} at epoch {state['epoch']}", flush=True)
    else:
        model = build(args)
        pretrained = args.model == "vgg19" and args.weights != "none"
        if pretrained:  # phase 1 of the original recipe: train only the new head
            model.get_layer("vgg19").trainable = False
        compile_model(model, args, lr_at(0, args))
    model.summary(print_fn=lambda line, **_: None)

    total_epochs = args.epochs
    if args.model == "vgg19" and args.weights != "none":
        total_epochs = args.epochs + args.fine_tune_epochs
    _fit(model, args, x_train, y_train_1h, val, run_dir, state, total_epochs)
    finish_run(run_dir, args)
    return run_dir / BEST


def _fit(model, args, x_train, y_train_1h, val, run_dir, state, total_epochs):
    import keras

    class RunState(keras.callbacks.Callback):
        """Saves a resumable checkpoint plus the early-stopping/best-model state every epoch."""

        def on_epoch_begin(self, epoch, logs=None):
            pretrained = args.model == "vgg19" and args.weights != "none"
            if pretrained and epoch == args.epochs and state["phase"] == "main":
                # phase 2: unfreeze the base with a low learning rate (recompiles the model)
                state["phase"] = "fine_tune"
                self.model.get_layer("vgg19").trainable = True
                compile_model(self.model, args, args.fine_tune_lr)
            lr = args.fine_tune_lr if state["phase"] == "fine_tune" else (
                lr_at(epoch, args) if args.schedule == "cosine" else None)
            if lr is not None:
                self.model.optimizer.learning_rate.assign(lr)

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            acc = float(logs.get("val_accuracy", 0.0))
            logs["lr"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
            if state["best"] is None or acc > state["best"]:
                state["best"], state["wait"] = acc, 0
                self.model.save(run_dir / BEST)
                print(f"\nepoch {epoch + 1}: val_accuracy improved to {acc:.4f}, saved {BEST}", flush=True)
            else:
                state["wait"] += 1
            state["epoch"] = epoch + 1
            tmp = run_dir / ("tmp_" + CHECKPOINT)
            self.model.save(tmp)
            os.replace(tmp, run_dir / CHECKPOINT)
            (run_dir / STATE).write_text(json.dumps(state))
            if state["wait"] >= args.patience:
                print(f"early stopping: no val_accuracy gain for {args.patience} epochs", flush=True)
                self.model.stop_training = True

    callbacks = [
        RunState(),
        keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=state["epoch"] > 0),
    ]
    if args.schedule == "plateau":
        callbacks.append(keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=3, min_lr=1e-6))
    if state["epoch"] >= total_epochs or (state["wait"] >= args.patience):
        return
    batches = make_sequence(x_train, y_train_1h, args, epoch_offset=state["epoch"])
    model.fit(batches, validation_data=val, epochs=total_epochs, initial_epoch=state["epoch"],
              callbacks=callbacks, verbose=args.verbose)


def finish_run(run_dir: Path, args) -> None:
    """Curves and an evaluation of best.keras on the validation split."""
    from training.evaluate import evaluate_model, plot_history

    if (run_dir / "history.csv").exists():
        plot_history(run_dir / "history.csv", run_dir / "curves.png")
    report = evaluate_model(run_dir / BEST, args.val_data or args.data, "val", run_dir,
                            scaling=args.scaling, cache_dir=args.cache_dir or None)
    print(f"best model: 7-class accuracy {report['accuracy_7']:.4f}, "
          f"6-class accuracy {report['accuracy_6']:.4f} on val", flush=True)


def main(argv=None) -> None:
    started = time.time()
    best = train(parse_args(argv))
    print(f"done in {time.time() - started:.0f}s; best model at {best}")


if __name__ == "__main__":
    main()
