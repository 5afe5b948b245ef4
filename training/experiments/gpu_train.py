"""Teachers, then distilled students, on a GPU inside a fixed wall-clock budget.

    KERAS_BACKEND=torch python -m training.experiments.gpu_train --pack .gpu/fer2013_jpeg.npz \
        --out OUT --budget 540

The recipe of the published FER2013 VGG nets (4 stages x 2 convolutions, 64 -> 512
filters, batch norm; SGD with Nesterov momentum, weight decay; random 40 px crops of the
48 px faces, flips, rotation, scaling, random erasing; ten-crop evaluation), trained as
several teachers in parallel processes on one GPU, then distilled (Hinton et al. 2015:
soft targets at a temperature plus the true label) into smaller students that fit the
serving budget. Everything happens on the GPU: the uint8 dataset lives there and each
batch is augmented with one ``affine_grid``/``grid_sample`` call.

The budget is wall-clock: every schedule (warm-up, cosine decay) is a function of the
elapsed fraction of its phase's time, so the run ends on time on any GPU (and on a CPU,
with ``--tiny``, as the test does); the number of epochs reached is logged. Models are
Keras 3 models (``training.models``) trained with a PyTorch loop (``KERAS_BACKEND=torch``)
and saved as ``.keras`` files, which load under every backend.

Measured on an H200 (2026-11-26, training/gpu_profile.py): a step's Keras-on-torch overhead
is ~28 ms whatever the batch (width 64: 8.6k img/s at batch 256, 23k img/s at batch 1024;
bf16 autocast gained nothing at this size), and processes sharing the GPU time-slice it
(4 teachers in parallel: 4.3k img/s each). So: large batches, few processes. The shipped
model came from ``--teachers 1 --teacher-share 1.0 --student-widths ""`` with a 190 s budget
(126 epochs in 155 s, 69.4% ten-crop on PublicTest); with 500 s, 4 parallel teachers reached
only 36 epochs (63-65%), and students distilled from them for 18 epochs 60-62%.

Writes into --out: ``log.txt``, ``summary.json`` (every model's PublicTest accuracy,
epochs, time), ``<student>.keras`` (each student with a softmax output, input 40x40),
and ``soft_labels.npz`` (the teacher ensemble's ten-crop probabilities for train and val).
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

CROP = 40          # training/eval crop of the 48 px faces
FULL = 48
NUM_CLASSES = 7


def log(out: Path, *parts) -> None:
    line = " ".join(str(p) for p in parts)
    print(line, flush=True)
    with open(out / "log.txt", "a") as handle:
        handle.write(line + "\n")


# --------------------------------------------------------------------------- data

def load_data(pack: Path, cache: Path, tiny: bool):
    """uint8 (N, 48, 48) train/val arrays, decoded once and cached as .npy for the workers."""
    if not (cache / "x_train.npy").exists():
        from training.experiments.gpu_pack import unpack

        cache.mkdir(parents=True, exist_ok=True)
        for split in ("train", "val"):
            x, y = unpack(pack, split)
            if tiny:
                pick = np.random.default_rng(0).permutation(len(x))[: (512 if split == "train" else 256)]
                x, y = x[pick], y[pick]
            np.save(cache / f"x_{split}.npy", x)
            np.save(cache / f"y_{split}.npy", y)
    return {name: np.load(cache / f"{name}.npy") for name in ("x_train", "y_train", "x_val", "y_val")}


def augment(torch, x_uint8, gen, crop: int = CROP, rotation: float = 15.0, scale: float = 0.15,
            shift: float = 0.08, erase_p: float = 0.5):
    """A batch of uint8 (B, 48, 48) faces -> float (B, crop, crop, 1) in [0, 1], augmented.

    One affine resampling per image: a random crop position (the crop is crop/48 of the
    face), rotation, scale, an extra shift and a horizontal flip; then random erasing.
    """
    import torch.nn.functional as F

    b = x_uint8.shape[0]
    dev = x_uint8.device
    x = x_uint8.float().unsqueeze(1) / 255.0
    u = lambda *shape: torch.rand(*shape, device=dev, generator=gen)  # noqa: E731
    angle = (u(b) * 2 - 1) * math.radians(rotation)
    s = 1.0 + (u(b) * 2 - 1) * scale
    flip = torch.where(u(b) < 0.5, -1.0, 1.0)
    ratio = crop / FULL
    a = ratio / s
    theta = torch.zeros(b, 2, 3, device=dev)
    theta[:, 0, 0] = a * torch.cos(angle) * flip
    theta[:, 0, 1] = -a * torch.sin(angle)
    theta[:, 1, 0] = a * torch.sin(angle) * flip
    theta[:, 1, 1] = a * torch.cos(angle)
    room = 1.0 - ratio  # crop position anywhere inside the face, plus a small shift
    theta[:, :, 2] = (u(b, 2) * 2 - 1) * (room + shift)
    grid = F.affine_grid(theta, (b, 1, crop, crop), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if erase_p > 0:  # random erasing: one rectangle of 2-25% of the area, filled with noise
        area = (0.02 + u(b) * 0.23) * crop * crop
        aspect = torch.exp((u(b) * 2 - 1) * math.log(3.0))
        h = torch.sqrt(area * aspect).clamp(1, crop)
        w = torch.sqrt(area / aspect).clamp(1, crop)
        y0 = u(b) * (crop - h)
        x0 = u(b) * (crop - w)
        ys = torch.arange(crop, device=dev).view(1, crop, 1)
        xs = torch.arange(crop, device=dev).view(1, 1, crop)
        mask = ((ys >= y0.view(-1, 1, 1)) & (ys < (y0 + h).view(-1, 1, 1))
                & (xs >= x0.view(-1, 1, 1)) & (xs < (x0 + w).view(-1, 1, 1)))
        mask &= (u(b) < erase_p).view(-1, 1, 1)
        out = torch.where(mask.unsqueeze(1), u(b, 1, crop, crop), out)
    return out.permute(0, 2, 3, 1).contiguous()


def ten_crops(torch, x_uint8, crop: int = CROP):
    """The 10 standard test views (4 corners + centre, each also mirrored) of uint8 (B, 48, 48)."""
    x = x_uint8.float().unsqueeze(-1) / 255.0
    m = FULL - crop
    c = m // 2
    views = [x[:, i:i + crop, j:j + crop] for i, j in ((0, 0), (0, m), (m, 0), (m, m), (c, c))]
    views += [torch.flip(v, dims=[2]) for v in views]
    return views


# --------------------------------------------------------------------------- models

def build(spec: dict, logits: bool = True):
    from training.models import build_vggnet

    return build_vggnet((CROP, CROP, 1), NUM_CLASSES, width=spec["width"], head_units=spec["head"],
                        dropout=spec.get("dropout", 0.25), head_dropout=spec.get("head_dropout", 0.5),
                        output_activation=None if logits else "softmax")


def param_groups(model, weight_decay: float):
    decay, no_decay = [], []
    for v in model.trainable_variables:
        (decay if v.path.endswith("kernel") else no_decay).append(v.value)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def mean_probs(torch, model, views, batch: int = 1024):
    """Mean softmax over views (list of (N, crop, crop, 1) float tensors) -> (N, 7) probabilities."""
    total = None
    with torch.no_grad(), autocast(torch):
        for view in views:
            parts = [torch.softmax(model(view[i:i + batch], training=False).float(), -1)
                     for i in range(0, len(view), batch)]
            probs = torch.cat(parts)
            total = probs if total is None else total + probs
    return total / len(views)


def autocast(torch):
    if torch.cuda.is_available():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    import contextlib

    return contextlib.nullcontext()


def lr_at(fraction: float, peak: float, warmup: float = 0.03) -> float:
    if fraction < warmup:
        return peak * (0.1 + 0.9 * fraction / warmup)
    progress = min(1.0, (fraction - warmup) / (1 - warmup))
    return peak * 0.5 * (1 + math.cos(math.pi * progress))


def train_one(spec: dict, data_dir: Path, work: Path, out: Path) -> dict:
    """Train one model (teacher or, with spec['teachers'], a distilled student) for spec['seconds']."""
    import keras
    import torch

    started = time.time()
    keras.utils.set_random_seed(spec["seed"])
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    if dev == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    gen = torch.Generator(device=dev)
    gen.manual_seed(spec["seed"])
    data = {k: np.load(data_dir / f"{k}.npy") for k in ("x_train", "y_train", "x_val", "y_val")}
    x_train = torch.as_tensor(data["x_train"], device=dev)
    y_train = torch.as_tensor(data["y_train"], device=dev)
    x_val = torch.as_tensor(data["x_val"], device=dev)
    y_val = torch.as_tensor(data["y_val"], device=dev)
    val_views = ten_crops(torch, x_val)

    model = build(spec)
    teachers = []
    for path in spec.get("teachers", []):
        tspec = json.loads((Path(path).with_suffix(".json")).read_text())
        teacher = build(tspec)
        teacher.load_weights(path)
        teachers.append(teacher)
    temperature, alpha = spec.get("temperature", 4.0), spec.get("alpha", 0.9)
    optimizer = torch.optim.SGD(param_groups(model, spec["weight_decay"]), lr=spec["lr"],
                                momentum=0.9, nesterov=True)
    n, bs = len(x_train), spec["batch"]
    steps_per_epoch = n // bs
    budget = spec["seconds"]
    t0 = time.time()
    epoch = step = 0
    best = {"acc": -1.0}
    history = []
    label_smoothing = spec.get("label_smoothing", 0.0)
    while True:
        order = torch.randperm(n, device=dev, generator=gen)
        model_loss = 0.0
        for i in range(steps_per_epoch):
            fraction = (time.time() - t0) / budget
            if fraction >= 1.0:
                break
            for group in optimizer.param_groups:
                group["lr"] = lr_at(fraction, spec["lr"])
            idx = order[i * bs:(i + 1) * bs]
            x = augment(torch, x_train[idx], gen, erase_p=spec.get("erase", 0.5))
            y = y_train[idx]
            with autocast(torch):
                logits = model(x, training=True).float()
                loss = torch.nn.functional.cross_entropy(logits, y, label_smoothing=label_smoothing)
                if teachers:
                    with torch.no_grad():
                        soft = sum(torch.softmax(t(x, training=False).float() / temperature, -1)
                                   for t in teachers) / len(teachers)
                    kd = torch.nn.functional.kl_div(torch.log_softmax(logits / temperature, -1), soft,
                                                    reduction="batchmean") * temperature ** 2
                    loss = alpha * kd + (1 - alpha) * loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            model_loss += float(loss.detach()) if i % 20 == 0 else 0.0
            step += 1
        else:
            epoch += 1
            probs = mean_probs(torch, model, val_views[4:5] + val_views[9:10])  # centre + mirror
            acc = float((probs.argmax(-1) == y_val).float().mean())
            history.append({"epoch": epoch, "seconds": round(time.time() - t0, 1), "val_acc_center_flip": round(acc, 4),
                            "lr": round(optimizer.param_groups[0]["lr"], 5)})
            if epoch % spec.get("log_every", 5) == 0:
                log(out, f"[{spec['name']}] epoch {epoch} {time.time() - t0:.0f}s val(centre+flip) {acc:.4f}")
            if (time.time() - t0) / budget > 0.6 and acc > best["acc"]:
                best = {"acc": acc, "epoch": epoch}
                model.save_weights(work / f"{spec['name']}.weights.h5")
            continue
        break
    if best["acc"] < 0:  # budget too short to reach the selection window: keep the last weights
        model.save_weights(work / f"{spec['name']}.weights.h5")
    model.load_weights(work / f"{spec['name']}.weights.h5")
    probs10 = mean_probs(torch, model, val_views)
    probs2 = mean_probs(torch, model, val_views[4:5] + val_views[9:10])
    result = {
        "name": spec["name"], "role": "student" if teachers else "teacher", "spec": spec,
        "epochs": epoch, "steps": step, "seconds": round(time.time() - started, 1),
        "images_per_second": round(step * bs / max(1e-9, time.time() - t0), 1),
        "best_epoch": best.get("epoch"),
        "val_acc_ten_crop": round(float((probs10.argmax(-1) == y_val).float().mean()), 4),
        "val_acc_center_flip": round(float((probs2.argmax(-1) == y_val).float().mean()), 4),
        "history": history,
    }
    (work / f"{spec['name']}.weights.json").write_text(json.dumps(spec))
    (work / f"{spec['name']}.result.json").write_text(json.dumps(result))
    log(out, f"[{spec['name']}] done: {epoch} epochs, {result['images_per_second']} img/s, "
             f"val ten-crop {result['val_acc_ten_crop']}, centre+flip {result['val_acc_center_flip']}")
    return result


# --------------------------------------------------------------------------- orchestration

def run_parallel(specs: list[dict], work: Path, out: Path) -> list[dict]:
    """One process per spec, all at once (they share the GPU), then their results."""
    procs = []
    for spec in specs:
        path = work / f"{spec['name']}.spec.json"
        path.write_text(json.dumps(spec))
        cmd = [sys.executable, "-m", "training.experiments.gpu_train", "--worker", str(path), "--work", str(work),
               "--out", str(out)]
        procs.append((spec, subprocess.Popen(cmd, stdout=open(work / f"{spec['name']}.log", "w"),
                                             stderr=subprocess.STDOUT)))
    results = []
    for spec, proc in procs:
        code = proc.wait()
        result_path = work / f"{spec['name']}.result.json"
        if code == 0 and result_path.exists():
            results.append(json.loads(result_path.read_text()))
        else:
            tail = (work / f"{spec['name']}.log").read_text()[-3000:]
            log(out, f"[{spec['name']}] FAILED (exit {code}):\n{tail}")
    return results


def ensemble_soft_labels(teachers: list[dict], work: Path, out: Path) -> dict:
    """Ten-crop probabilities of the teacher ensemble on train and val -> soft_labels.npz."""
    import torch

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    data = {k: np.load(work / f"{k}.npy") for k in ("x_train", "y_train", "x_val", "y_val")}
    outputs = {}
    for split in ("train", "val"):
        x = torch.as_tensor(data[f"x_{split}"], device=dev)
        total = 0
        for t in teachers:
            model = build(t["spec"])
            model.load_weights(work / f"{t['name']}.weights.h5")
            total = total + mean_probs(torch, model, ten_crops(torch, x))
        outputs[split] = (total / len(teachers)).cpu().numpy()
    acc = float((outputs["val"].argmax(-1) == data["y_val"]).mean())
    np.savez_compressed(out / "soft_labels.npz", train=outputs["train"].astype(np.float16),
                        val=outputs["val"].astype(np.float16))
    return {"teachers": [t["name"] for t in teachers], "val_acc_ten_crop": round(acc, 4)}


def export_student(result: dict, work: Path, out: Path, max_bytes: int = 15 * 2**20) -> Path:
    """The student with a softmax output, as a .keras file (input 40x40x1, unit scaling).

    A model too large to come back from the GPU machine (16 MiB a file) is written as its
    weights in float16 (``<name>.weights.npz``, arrays in ``get_weights()`` order) instead.
    """
    model = build(result["spec"], logits=True)
    model.load_weights(work / f"{result['name']}.weights.h5")
    final = build(result["spec"], logits=False)
    final.set_weights(model.get_weights())
    path = out / f"{result['name']}.keras"
    final.save(path)
    if path.stat().st_size > max_bytes:
        path.unlink()
        path = out / f"{result['name']}.weights.npz"
        np.savez(path, *[w.astype(np.float16) for w in final.get_weights()])
    return path


def orchestrate(args) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    deadline = time.time() + args.budget
    import keras
    import torch

    log(out, f"backend {keras.backend.backend()} keras {keras.__version__} torch {torch.__version__} "
             f"cuda {torch.cuda.is_available()} {torch.cuda.get_device_name() if torch.cuda.is_available() else ''}")
    data = load_data(Path(args.pack), work, args.tiny)
    log(out, f"data: train {data['x_train'].shape} val {data['x_val'].shape} "
             f"({time.time() + args.budget - deadline:.0f}s since start)")
    tiny = args.tiny
    common = dict(batch=32 if tiny else args.batch, lr=0.02 if tiny else args.lr, weight_decay=5e-4,
                  label_smoothing=0.0, log_every=1 if tiny else 10)
    remaining = deadline - time.time()
    teacher_seconds = remaining * args.teacher_share
    teacher_width = 8 if tiny else 64
    teachers = [dict(common, name=f"teacher{k}", seed=args.seed + k, width=teacher_width,
                     head=32 if tiny else 512, seconds=max(10.0, teacher_seconds - 25))
                for k in range(args.teachers)]
    summary = {"budget_s": args.budget, "teachers": [], "students": []}
    summary["teachers"] = run_parallel(teachers, work, out)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    if not summary["teachers"]:
        log(out, "no teacher finished; stopping")
        return
    if not args.student_widths:  # no distillation: the teachers are the result
        for result in summary["teachers"]:
            export_student(result, work, out)
        log(out, "summary: " + ", ".join(f"{r['name']} {r['val_acc_ten_crop']}/{r['val_acc_center_flip']} "
                                         f"({r['epochs']} ep)" for r in summary["teachers"]))
        return
    summary["ensemble"] = ensemble_soft_labels(summary["teachers"], work, out)
    log(out, f"teacher ensemble ({len(summary['teachers'])}) ten-crop val {summary['ensemble']['val_acc_ten_crop']}")
    remaining = deadline - time.time()
    student_seconds = max(10.0, remaining - (20 if tiny else 45))
    teacher_paths = [str(work / f"{t['name']}.weights.h5") for t in summary["teachers"]]
    for t in summary["teachers"]:  # the students rebuild each teacher from its spec
        (work / f"{t['name']}.weights.json").write_text(json.dumps(t["spec"]))
    widths = [4, 6] if tiny else args.student_widths
    students = [dict(common, name=f"student_w{w}", seed=200 + w, width=w, head=32 if tiny else 256,
                     seconds=student_seconds, teachers=teacher_paths, temperature=args.temperature,
                     alpha=args.alpha)
                for w in widths]
    summary["students"] = run_parallel(students, work, out)
    for result in summary["students"]:
        export_student(result, work, out)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    log(out, "summary: " + ", ".join(f"{r['name']} {r['val_acc_ten_crop']}/{r['val_acc_center_flip']} "
                                     f"({r['epochs']} ep)" for r in summary["teachers"] + summary["students"]))
    log(out, f"done in {args.budget - (deadline - time.time()):.0f}s of {args.budget}s")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pack", help="FER2013 pack from training.experiments.gpu_pack")
    p.add_argument("--out", required=True, help="output folder (models, logs, summary)")
    p.add_argument("--work", default="/tmp/gpu_train_work", help="scratch folder (weights, decoded data)")
    p.add_argument("--budget", type=float, default=540, help="wall-clock seconds for the whole run")
    p.add_argument("--teacher-share", type=float, default=0.55, help="share of the budget for the teachers")
    p.add_argument("--teachers", type=int, default=4, help="teachers trained in parallel")
    p.add_argument("--batch", type=int, default=1024, help="batch size (a step's cost is mostly per step: larger is faster)")
    p.add_argument("--lr", type=float, default=0.1, help="peak SGD learning rate")
    p.add_argument("--student-widths", type=lambda s: [int(w) for w in s.split(",") if w], default=[32, 48, 64],
                   help="widths of the students (first block's filters), comma-separated")
    p.add_argument("--temperature", type=float, default=4.0, help="distillation temperature")
    p.add_argument("--alpha", type=float, default=0.9, help="weight of the distillation loss")
    p.add_argument("--seed", type=int, default=100, help="seed of the first teacher (the k-th gets seed + k)")
    p.add_argument("--tiny", action="store_true", help="a tiny, fast run (tests, CPU)")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    return p.parse_args(argv)



def load_weights(source: Path, logits: bool = False):
    """(model, spec) from a ``<name>.weights.npz`` this script wrote: float16 weights of the
    model described by the ``summary.json`` beside it."""
    name = source.name[: -len(".weights.npz")]
    summary = json.loads((source.parent / "summary.json").read_text())
    entries = [r for r in summary["teachers"] + summary.get("students", []) if r["name"] == name]
    if not entries:
        raise ValueError(f"{source.parent / 'summary.json'} describes no model named {name!r}")
    model = build(entries[0]["spec"], logits=logits)
    with np.load(source) as weights:
        model.set_weights([weights[f"arr_{i}"].astype(np.float32) for i in range(len(weights.files))])
    return model, entries[0]["spec"]


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.worker:
        spec = json.loads(Path(args.worker).read_text())
        train_one(spec, Path(args.work), Path(args.work), Path(args.out))
        return
    orchestrate(args)


if __name__ == "__main__":
    main()
