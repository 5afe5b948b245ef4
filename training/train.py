"""Train the emotion classifier on the CPU: FER2013 with FER+-corrected targets, plus real
photos cropped by the service's own detector, resumable epoch by epoch.

    python -m training.train --run-dir runs/teacher --init models/emotion_classifier.keras
    python -m training.train --run-dir runs/teacher --resume          # after a stop: < 1 epoch lost

Each epoch: FER2013 Training faces (targets: ``training.targets.TargetMix`` of the FER2013
label, the FER+ votes and, when given, a teacher's saved outputs) with the geometric
augmentation and, on a share of them, ``photo_look``; some FER2013 faces of the classes the
photo pool has (neutral, happy, surprise) are replaced by real-photo crops of the same class
(``--photo-share`` of that class's FER2013 count), so the class balance of an epoch is
FER2013's. SGD with Nesterov momentum, cosine decay over the whole run, weight decay on
kernels, soft-target cross-entropy. After every epoch: a checkpoint (weights, optimizer,
state) and PublicTest scores (centre crop, as served): 7- and 6-class by FER2013's labels,
6-class by the FER+ majority. The last epoch is the result (no selection on any score).

Writes into --run-dir: hyperparameters.json, log.txt, history.csv, curves.png, model.keras
(the last epoch, softmax, on the training crop size; training.export makes the served file)
and checkpoint/.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import time
from pathlib import Path

import numpy as np

from emotionlib.labels import FER2013_LABELS
from training.data import CACHE_DIR, FER_DATA, PHOTO_POOL
from training.augment import PhotoLook, centre_crop, photo_look, random_crop_affine
from training.targets import TargetMix

CROP, FULL = 40, 48


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run-dir", type=Path, required=True, help="output folder of this run")
    p.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its last checkpoint")
    p.add_argument("--data", default=FER_DATA, help="FER2013 folder: train/, val/ and ferplus_votes.csv")
    p.add_argument("--photos", default=PHOTO_POOL, help="labelled real-photo training pool ('' for none)")
    p.add_argument("--photo-detectors", default="haar,yunet",
                   help="detectors whose crops of the pool are used (each photo: one of them at random)")
    p.add_argument("--photo-share", type=float, default=0.25,
                   help="per class of the pool: photos per epoch as a share of FER2013's count of that class "
                        "(the same number of that class's FER2013 faces sit the epoch out)")
    p.add_argument("--init", default="", help="start from this model's weights (.keras; '' = random, --width)")
    p.add_argument("--width", type=int, default=64, help="filters of the first block (random start only)")
    p.add_argument("--head", type=int, default=512, help="units of the dense layer (random start only)")
    p.add_argument("--label-weight", type=float, default=0.5, help="target share of the FER2013 label")
    p.add_argument("--votes-weight", type=float, default=0.5, help="target share of the FER+ vote distribution")
    p.add_argument("--teacher-weight", type=float, default=0.0, help="target share of the teacher's outputs")
    p.add_argument("--temperature", type=float, default=1.0, help="softens the teacher's logits")
    p.add_argument("--teacher", default="", help="teacher outputs (training.teacher's .npz)")
    p.add_argument("--photo-look", type=float, default=0.5, help="share of FER2013 faces given photo_look ('0': off)")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.005, help="peak SGD learning rate (cosine decay to 0)")
    p.add_argument("--warmup", type=float, default=0.0, help="share of the steps with a linear warm-up")
    p.add_argument("--weight-decay", type=float, default=5e-4, help="L2 on kernels")
    p.add_argument("--precision", choices=("float32", "mixed_bfloat16"), default="float32",
                   help="mixed_bfloat16 is 2x faster for width 32 on CPUs with AMX/AVX512-BF16")
    p.add_argument("--max-steps", type=int, default=0, help="stop each epoch after this many steps (smoke runs)")
    p.add_argument("--max-epochs-this-call", type=int, default=0,
                   help="return after this many epochs (the run stays resumable; for tests and time slots)")
    p.add_argument("--seed", type=int, default=20261202)
    p.add_argument("--cache-dir", default=CACHE_DIR,
                   help="decoded datasets and photo crops are cached here ('' to disable)")
    return p.parse_args(argv)


def log(run_dir: Path, *parts) -> None:
    line = time.strftime("%H:%M:%S ") + " ".join(str(p) for p in parts)
    print(line, flush=True)
    with open(run_dir / "log.txt", "a") as handle:
        handle.write(line + "\n")


class TrainingSet:
    """FER2013 Training with per-image soft targets, and the photo pool's crops with theirs."""

    def __init__(self, args, mix: TargetMix):
        from training.data import list_folder, load_split_cached, split_folder
        from training.photos import crop_folder_cached
        from training.targets import read_votes

        cache = args.cache_dir or None
        self.images, self.labels = load_split_cached(args.data, "train", cache)
        files, labels = list_folder(split_folder(args.data, "train"))
        if not np.array_equal(labels, self.labels):
            raise ValueError("cached FER2013 labels differ from the folder: clear --cache-dir")
        votes = read_votes(args.data, files) if mix.votes else None
        teacher = dict(np.load(args.teacher)) if args.teacher else {}
        self.targets = mix(self.labels, votes, teacher.get("fer"))
        self.photos, self.photo_labels, self.photo_targets = [], [], []
        if args.photos:
            for detector in args.photo_detectors.split(","):
                crops = crop_folder_cached(args.photos, detector, cache)
                keep = crops.found_labels() >= 0
                labels = crops.found_labels()[keep]
                logits = teacher.get(f"photos_{detector}")
                self.photos.append(crops.images[keep])
                self.photo_labels.append(labels)
                self.photo_targets.append(mix(labels, None, None if logits is None else logits[keep]))

    def epoch(self, rng: np.random.Generator, share: float) -> list[tuple[int, int]]:
        """(source, index) pairs of one epoch, shuffled: source -1 is FER2013, k >= 0 the k-th
        detector's photo crops. Per class of the pool, ``share`` x FER2013's count of that class
        in photos replace as many FER2013 faces of the class (the class balance stays FER2013's)."""
        fer = np.arange(len(self.labels))
        chosen = [np.stack([np.full(len(fer), -1), fer], 1)]
        if self.photos and share > 0:
            pool_labels = self.photo_labels[0]
            drop = np.zeros(len(fer), bool)
            for label in np.unique(pool_labels):
                of_class = np.flatnonzero(self.labels == label)
                n = min(int(round(share * len(of_class))), int((pool_labels == label).sum()))
                drop[rng.choice(of_class, n, replace=False)] = True
                picks = rng.choice(np.flatnonzero(pool_labels == label), n, replace=False)
                sources = rng.integers(0, len(self.photos), n)
                chosen.append(np.stack([sources, picks], 1))
            chosen[0] = chosen[0][~drop]
        order = np.concatenate(chosen)
        return order[rng.permutation(len(order))]

    def batch(self, pairs: np.ndarray, rng: np.random.Generator, look: PhotoLook):
        """uint8 (B, 48, 48) faces (photo_look on FER2013's) and (B, 7) targets."""
        faces = np.empty((len(pairs), FULL, FULL), np.uint8)
        targets = np.empty((len(pairs), len(FER2013_LABELS)), np.float32)
        fer = pairs[:, 0] == -1
        faces[fer] = photo_look(self.images[pairs[fer, 1]], rng, look)
        targets[fer] = self.targets[pairs[fer, 1]]
        for k in range(len(self.photos)):
            mine = pairs[:, 0] == k
            faces[mine] = self.photos[k][pairs[mine, 1]]
            targets[mine] = self.photo_targets[k][pairs[mine, 1]]
        return faces, targets


class Validation:
    """PublicTest: FER2013 labels and FER+ majority labels, scored on the served centre crop."""

    def __init__(self, args):
        from training.data import list_folder, load_split_cached, split_folder
        from training.targets import ferplus_majority, read_votes

        self.images, self.labels = load_split_cached(args.data, "val", args.cache_dir or None)
        files, _ = list_folder(split_folder(args.data, "val"))
        self.ferplus = ferplus_majority(read_votes(args.data, files))

    def scores(self, probs: np.ndarray) -> dict:
        from training.evaluate import fer_scores

        return fer_scores(probs, self.labels, self.ferplus)


def logits_model(width: int, head: int):
    from training.models import build_vggnet

    return build_vggnet((CROP, CROP, 1), len(FER2013_LABELS), width=width, head_units=head, output_activation=None)


def core_of(model):
    """The classifier network inside a served model (centre crop and view averaging around it)."""
    import keras

    inner = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    return core_of(inner[0]) if inner else model


def initial_model(args):
    """A logits model on CROP px faces: from --init's weights, or random at --width."""
    import keras

    if not args.init:
        return logits_model(args.width, args.head), {"width": args.width, "head": args.head}
    core = core_of(keras.models.load_model(args.init, compile=False))
    width = int(core.get_layer("block1_conv1").filters)
    head = int(core.get_layer("fc1").units)
    model = logits_model(width, head)
    model.set_weights(core.get_weights())
    return model, {"width": width, "head": head}


def softmax_copy(model, spec: dict):
    """The same weights with a softmax output (what export and evaluation load)."""
    import keras

    from training.models import build_vggnet

    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        out = build_vggnet((CROP, CROP, 1), len(FER2013_LABELS), width=spec["width"], head_units=spec["head"])
    finally:
        keras.config.set_dtype_policy(policy)
    out.set_weights([np.asarray(w, np.float32) for w in model.get_weights()])
    return out


def predict_logits(model, faces: np.ndarray, batch: int = 512) -> np.ndarray:
    """float32 logits of uint8 (N, CROP, CROP) faces."""
    out = [np.asarray(model(faces[i:i + batch].astype(np.float32)[..., None] / 255.0, training=False), np.float32)
           for i in range(0, len(faces), batch)]
    return np.concatenate(out) if out else np.zeros((0, len(FER2013_LABELS)), np.float32)


def reseed_dropout(model, rng: np.random.Generator) -> None:
    """Dropout masks drawn from the epoch's own seed, so a resumed run repeats a straight one."""
    for layer in model.layers:
        generator = getattr(layer, "seed_generator", None)
        if generator is not None:
            generator.state.assign(np.array([rng.integers(1, 2**31), 0], np.int64))


def lr_at(step: int, total: int, peak: float, warmup: float) -> float:
    w = int(warmup * total)
    if step < w:
        return peak * (step + 1) / w
    return peak * 0.5 * (1 + math.cos(math.pi * (step - w) / max(1, total - w)))


def train(args) -> Path:
    import keras
    import tensorflow as tf

    from training.targets import softmax

    run_dir = args.run_dir
    ckpt = run_dir / "checkpoint"
    hp_path = run_dir / "hyperparameters.json"
    if args.resume:
        if not hp_path.exists():
            raise SystemExit(f"{run_dir} has no run to resume")
        saved = json.loads(hp_path.read_text())
        for key, value in saved.items():
            if key not in {"run_dir", "resume", "cache_dir", "max_epochs_this_call"}:
                setattr(args, key, value)
    elif (ckpt / "state.json").exists():
        raise SystemExit(f"{run_dir} has a checkpoint: pass --resume or choose another --run-dir")
    ckpt.mkdir(parents=True, exist_ok=True)
    keras.mixed_precision.set_global_policy(args.precision)
    keras.utils.set_random_seed(args.seed)
    mix = TargetMix(args.label_weight, args.votes_weight, args.teacher_weight, args.temperature)
    look = PhotoLook(share=args.photo_look)
    hp = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    hp.update(keras=keras.__version__, backend=keras.backend.backend(), labels=list(FER2013_LABELS))
    if args.init:
        from emotionlib.classifier import file_sha256

        hp["init_sha256"] = file_sha256(Path(args.init))
    hp_path.write_text(json.dumps(hp, indent=2))

    data, val = TrainingSet(args, mix), Validation(args)
    model, spec = initial_model(args)
    optimizer = keras.optimizers.SGD(learning_rate=args.lr, momentum=0.9, nesterov=True)
    optimizer.build(model.trainable_variables)
    kernels = [v for v in model.trainable_variables if v.path.endswith("kernel")]
    state = {"epoch": 0, "step": 0, "history": [], "spec": spec, "seconds": 0.0}
    if args.resume and (ckpt / "state.json").exists():
        state = load_checkpoint(ckpt, model, optimizer)
        log(run_dir, f"resumed after epoch {state['epoch']}")
    else:
        log(run_dir, f"start: {args.init or 'random'} {spec}; PublicTest",
            json.dumps(val.scores(softmax(predict_logits(model, centre_crop(val.images, CROP))))))

    @tf.function(jit_compile=False)
    def train_step(x, y):
        with tf.GradientTape() as tape:
            logits = tf.cast(model(x, training=True), tf.float32)
            loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(y, logits))
            decay = 0.5 * args.weight_decay * tf.add_n([tf.reduce_sum(tf.square(tf.cast(k, tf.float32)))
                                                        for k in kernels])
            total = loss + decay
        grads = tape.gradient(total, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    steps_per_epoch = len(data.labels) // args.batch
    if args.max_steps:
        steps_per_epoch = min(steps_per_epoch, args.max_steps)
    total_steps = steps_per_epoch * args.epochs
    stop_at = args.epochs if not args.max_epochs_this_call else min(args.epochs, state["epoch"] + args.max_epochs_this_call)
    while state["epoch"] < stop_at:
        started = time.time()
        rng = np.random.default_rng([args.seed, state["epoch"]])
        reseed_dropout(model, rng)
        pairs = data.epoch(rng, args.photo_share)
        loss_sum = 0.0
        for i in range(steps_per_epoch):
            faces, targets = data.batch(pairs[i * args.batch:(i + 1) * args.batch], rng, look)
            x = random_crop_affine(faces, rng, CROP).astype(np.float32)[..., None] / 255.0
            optimizer.learning_rate.assign(lr_at(state["step"], total_steps, args.lr, args.warmup))
            loss_sum += float(train_step(tf.constant(x), tf.constant(targets)))
            state["step"] += 1
        train_seconds = time.time() - started
        state["epoch"] += 1
        scores = val.scores(softmax(predict_logits(model, centre_crop(val.images, CROP))))
        row = {"epoch": state["epoch"], "loss": round(loss_sum / steps_per_epoch, 4), **scores,
               "lr_end": round(float(optimizer.learning_rate), 6),
               "images_per_s": round(steps_per_epoch * args.batch / train_seconds, 1),
               "seconds": round(time.time() - started, 1)}
        state["history"].append(row)
        state["seconds"] += row["seconds"]
        save_checkpoint(ckpt, model, optimizer, state)
        softmax_copy(model, spec).save(run_dir / "model.keras")
        write_history(run_dir, state["history"])
        log(run_dir, json.dumps(row))
    if state["epoch"] < args.epochs:
        log(run_dir, f"stopped after epoch {state['epoch']} of {args.epochs}: continue with --resume")
        return run_dir / "model.keras"
    log(run_dir, f"done: {state['epoch']} epochs in {state['seconds'] / 60:.1f} min; model {run_dir / 'model.keras'}")
    return run_dir / "model.keras"


def save_checkpoint(ckpt: Path, model, optimizer, state: dict) -> None:
    """Weights, optimizer variables and ``state`` (JSON) into ``ckpt``; state.json last, so a
    checkpoint whose state.json exists is whole."""
    model.save_weights(ckpt / "tmp.weights.h5")
    os.replace(ckpt / "tmp.weights.h5", ckpt / "model.weights.h5")
    np.savez(ckpt / "optimizer.npz", *[np.asarray(v) for v in optimizer.variables])
    (ckpt / "state.json").write_text(json.dumps(state))


def load_checkpoint(ckpt: Path, model, optimizer) -> dict:
    """What save_checkpoint wrote: weights and optimizer variables restored, the state returned."""
    model.load_weights(ckpt / "model.weights.h5")
    with np.load(ckpt / "optimizer.npz") as saved:
        for i, var in enumerate(optimizer.variables):
            var.assign(saved[f"arr_{i}"])
    return json.loads((ckpt / "state.json").read_text())


def write_history(run_dir: Path, rows: list[dict]) -> None:
    from training.evaluate import plot_curves

    with open(run_dir / "history.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    epochs = [r["epoch"] for r in rows]
    plot_curves(epochs, [[("train loss", [r["loss"] for r in rows])],
                         [(k, [r[k] for r in rows]) for k in ("fer2013_7", "ferplus_6")]], run_dir / "curves.png")


def main(argv=None) -> None:
    train(parse_args(argv))


if __name__ == "__main__":
    main()
