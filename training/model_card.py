"""Write MODEL_CARD.md for an exported model from its run folder and evaluation.

    python -m training.model_card --run runs/vggnet_w32 --model models/emotion_classifier.keras \
        --hardware "2-core x86_64 CPU (Xeon, AVX-512), no GPU" --training-time "1 h 25 min"

Numbers come from the files (hyperparameters.json, history.csv, the export's JSON and
evaluation.json), so the card always says what `training.evaluate` reproduces.
"""
from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

LIMITS = """\
- **Data biases.** FER2013 was collected by Google image search for emotion keywords: mostly
  posed or exaggerated expressions, skewed in age, ethnicity and photographic style, with label
  noise (human accuracy on it is about 65 +/- 5%). Accuracy on other populations, spontaneous
  expressions, profile views or poor lighting will be lower. Do not use the output for decisions
  about people (hiring, policing, health, education): emotion inference from faces is unreliable
  and in some jurisdictions regulated.
- **Input.** 48x48 grayscale faces as framed by OpenCV's frontal Haar cascade; colour is
  discarded; strongly rotated or profile faces are usually not detected at all.
- **Classes.** `disgust` is rare (436 of 28,709 training images, 1.5%) and poorly recognised; the
  API folds it into `angry`. `fear` is often confused with `sad` and `surprise`.
- **Data terms.** FER2013 was released for the ICML 2013 "Challenges in Representation Learning"
  workshop (Kaggle) for research; the images come from the web and their rights are not cleared.
  Check that your use is permitted before deploying commercially.
"""


def per_class_table(report: dict, key: str) -> str:
    rows = ["| class | precision | recall | F1 | support |", "|---|---:|---:|---:|---:|"]
    for name, row in report[key].items():
        rows.append(f"| {name} | {row['precision']:.3f} | {row['recall']:.3f} | {row['f1']:.3f} | {row['support']} |")
    return "\n".join(rows)


def per_class_sections(report: dict) -> str:
    """Per-class tables (7 classes, and the API's 6) and the figures, as both cards show them."""
    return f"""Per class, 7-class (PublicTest):

{per_class_table(report, 'per_class_7')}

Per class as the API reports it (6 classes):

{per_class_table(report, 'per_class_6')}

![confusion matrix](confusion_matrix.png)

![training curves](training_curves.png)
"""


def render(run: Path, model: Path, hardware: str, training_time: str) -> str:
    hp = json.loads((run / "hyperparameters.json").read_text())
    info = json.loads(model.with_suffix(".json").read_text())
    report = json.loads((model.parent / "evaluation.json").read_text())
    with open(run / "history.csv") as handle:
        history = list(csv.DictReader(handle))
    best = max(history, key=lambda r: float(r["val_accuracy"]))
    acc = info["accuracy"]
    recipe = ", ".join(f"{k}={hp[k]}" for k in (
        "model", "width", "size", "channels", "scaling", "epochs", "batch_size", "lr", "weight_decay",
        "schedule", "warmup_epochs", "label_smoothing", "rotation", "zoom", "shift", "no_flip", "seed"))
    return f"""# Model card: emotion_classifier (bundled default)

`models/emotion_classifier.keras` ({model.stat().st_size / 2**20:.1f} MB, {info['parameters']:,} parameters),
registered by `python import_model.py` with `models/emotion_classifier.json` as its metadata.

## Results

| split | images | 7-class accuracy | 6-class accuracy (disgust folded into angry) |
|---|---:|---:|---:|
| FER2013 PublicTest (`val/`) | {acc['samples']} | **{acc['accuracy_7']:.2%}** | {acc['accuracy_6']:.2%} |

The PrivateTest split was not available to training; it is the project's held-out test set.
PublicTest was used for model selection (best epoch) and for choosing the test-time
augmentation, so its number is slightly optimistic. Reproduce:

```bash
python -m training.evaluate models/emotion_classifier.keras ../shared/data/fer2013 --split val
```

{per_class_sections(report)}
## Model

- Architecture `{hp['model']}` (training/models.py): VGG-style CNN, four blocks of two 3x3
  convolutions ({hp['width']}, {hp['width'] * 2}, {hp['width'] * 4}, {hp['width'] * 8} filters) with batch norm, ReLU,
  2x2 max pooling and dropout 0.25; a 256-unit dense layer with batch norm and dropout 0.5;
  softmax over FER2013's 7 classes. VGG19's topology at reduced width and depth, trained from
  scratch (no ImageNet weights offline).
- Input {info['input_size']}x{info['input_size']}x{info['channels']} grayscale, pixels scaled to [0, 1]
  (`emotionlib.preprocess.preprocess_face`, the function the service uses).
- Outputs, in order: {', '.join(info['labels'])}.
- Test-time augmentation baked into the saved model: `{info['tta']}` (the face and its mirror
  image are classified and the probabilities averaged), built from standard Keras layers.

## Data and recipe

- FER2013 Training split (28,709 images) for training; PublicTest (3,589) for model selection,
  early stopping and the choice of TTA. Image-folder copy in `../shared/data/fer2013`
  (see its README for provenance).
- Augmentation (training/augment.py, seeded): random rotation +/-{hp['rotation']} degrees,
  zoom +/-{hp['zoom']:.0%}, shift +/-{hp['shift']:.0%}, horizontal flip.
- AdamW, label smoothing {hp['label_smoothing']}, linear warmup then cosine decay of the learning rate.
- Best epoch: {int(best['epoch']) + 1} of {len(history)} (val accuracy {float(best['val_accuracy']):.2%} before TTA).
- Full settings: {recipe}; Keras {hp['keras_version']}, backend {hp['backend']}.
- Reproduce: `python -m training.train --data ../shared/data/fer2013 --run-dir runs/vggnet_w32 --epochs {hp['epochs']}`
  then `python -m training.export runs/vggnet_w32/best.keras models/emotion_classifier.keras --tta {info['tta']} --data ../shared/data/fer2013`.
  (This model's run was interrupted once after epoch 4 and continued with `--resume`, with the
  epoch budget lowered from 40 to {hp['epochs']}; the schedule follows the final budget from epoch 5.)

## Hardware and time

{hardware}; training took {training_time}.

## Known limits

{LIMITS}"""


def plot_gpu_history(history: list[dict], path: Path) -> None:
    """PublicTest accuracy (centre crop + mirror) and learning rate per epoch of a GPU run."""
    from training.evaluate import plot_curves

    plot_curves([h["epoch"] for h in history],
                [[("PublicTest accuracy (centre + mirror)", [h["val_acc_center_flip"] for h in history])],
                 [("learning rate", [h["lr"] for h in history])]], path)


def render_gpu(run: Path, name: str, model: Path, hardware: str, extra: str) -> str:
    """The card of a model trained by training/gpu_train.py (numbers from its summary.json,
    the export's JSON and evaluation.json, and the candidates table)."""
    summary = json.loads((run / "summary.json").read_text())
    entry = next(r for r in summary["teachers"] + summary.get("students", []) if r["name"] == name)
    spec = entry["spec"]
    info = json.loads(model.with_suffix(".json").read_text())
    report = json.loads((model.parent / "evaluation.json").read_text())
    acc = info["accuracy"]
    plot_gpu_history(entry["history"], model.parent / "training_curves.png")
    table = (model.parent / "candidates.md").read_text() if (model.parent / "candidates.md").exists() else ""
    return f"""# Model card: emotion_classifier (bundled default)

`models/emotion_classifier.keras` ({model.stat().st_size / 2**20:.1f} MB, {info['parameters']:,} parameters),
registered by `python import_model.py` with `models/emotion_classifier.json` as its metadata
(and converted there to the ONNX graph the service runs).

## Results

| split | images | 7-class accuracy | 6-class accuracy (disgust folded into angry) |
|---|---:|---:|---:|
| FER2013 PublicTest (`val/`) | {acc['samples']} | **{acc['accuracy_7']:.2%}** | {acc['accuracy_6']:.2%} |

The PrivateTest split was not available to training; it is the project's held-out test set.
PublicTest was used for model selection (the best epoch of the last 40% of the run, and the
choice between candidates), so its number is slightly optimistic. Reproduce:

```bash
python -m training.evaluate models/emotion_classifier.keras ../shared/data/fer2013 --split val
```

All candidates, on PublicTest and on the whole pipeline with real photos
(`python -m training.evaluate --table ... --dev ../shared/data/real_photos_dev`; cost = the
served ONNX graph on this machine's CPU, all cores):

{table}
{per_class_sections(report)}
## Model

- Architecture `vggnet` at width {spec['width']} (training/models.py): four blocks of two 3x3
  convolutions ({spec['width']}, {spec['width'] * 2}, {spec['width'] * 4}, {spec['width'] * 8} filters) with batch norm,
  ReLU, 2x2 max pooling and dropout 0.25; a {spec['head']}-unit dense layer with batch norm and
  dropout 0.5; softmax over FER2013's 7 classes. The published FER2013 VGG nets' shape
  (Khaireddin & Chen 2021; Pramerdorfer & Kampel 2016), trained from scratch.
- Trained on 40x40 crops of the 48x48 faces; the saved model takes the 48x48 face
  (`emotionlib.preprocess`, the function the service uses; pixels scaled to [0, 1]), crops its
  centre 40x40 (`Cropping2D`) and averages the face and its mirror image
  (TTA `{info['tta']}`, standard Keras layers).
- Outputs, in order: {', '.join(info['labels'])}.

## Data and recipe

- FER2013 Training split (28,709 images) for training; PublicTest (3,589) for model selection.
  Image-folder copy in `../shared/data/fer2013` (see its README for provenance); the shipped
  weights were trained on Training alone (no refit on Training+PublicTest).
- Augmentation on the GPU, one affine resampling per image (training/gpu_train.py): a random
  40 px crop position, rotation +/-15 degrees, scale +/-15%, shift +/-8%, horizontal flip; random
  erasing of one rectangle (2-25% of the area) with probability 0.5.
- SGD with Nesterov momentum 0.9, batch {spec['batch']}, peak learning rate {spec['lr']}, weight decay
  {spec['weight_decay']} on kernels, 3% warm-up then cosine decay to 0 over a wall-clock budget
  of {spec['seconds']:.0f} s: {entry['epochs']} epochs, best epoch {entry['best_epoch']}; seed {spec['seed']}.
  The weights are those of the best epoch on PublicTest (centre crop + mirror) within the last 40%
  of the run; the final epoch's weights scored {entry['history'][-1]['val_acc_center_flip']:.2%}: choosing the epoch on the
  split it is scored on makes the figure above optimistic by up to that difference.
- Ten-crop evaluation of the same weights: {entry['val_acc_ten_crop']:.2%}; centre crop + mirror
  (as served): {entry['val_acc_center_flip']:.2%} (on the GPU, PyTorch backend; the exported model
  gives the number above under TensorFlow).
- Reproduce on a GPU machine (one command, details in its header):
  `OUT=runs/gpu BUDGET={summary['budget_s']:.0f} training/gpu_train.sh --teachers 1 --teacher-share 1.0 --batch 1024 --lr 0.1 --student-widths ""`,
  then `python -m training.export runs/gpu/{name}.weights.npz models/emotion_classifier.keras --tta flip --data ../shared/data/fer2013`.
  The budget is wall-clock, so a slower GPU reaches fewer epochs.

{extra}

## Hardware and time

{hardware}

## Known limits

{LIMITS}"""


def main(argv=None) -> None:
    import sys

    argv = sys.argv[1:] if argv is None else argv
    if "--gpu-run" in argv:
        p = argparse.ArgumentParser(description="Model card of a training/gpu_train.py model.")
        p.add_argument("--gpu-run", type=Path, required=True, help="the gpu_train output folder")
        p.add_argument("--name", required=True, help="the model's name in its summary.json")
        p.add_argument("--model", type=Path, required=True, help="the exported model (.keras) with its .json")
        p.add_argument("--hardware", required=True, help="what it was trained on, and how long")
        p.add_argument("--extra", default="", help="markdown added after the recipe (e.g. the GPU runs tried)")
        args = p.parse_args(argv)
        card = render_gpu(args.gpu_run, args.name, args.model, args.hardware, args.extra)
        (args.model.parent / "MODEL_CARD.md").write_text(card)
        print(f"wrote {args.model.parent / 'MODEL_CARD.md'}")
        return
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, required=True, help="the training run folder")
    p.add_argument("--model", type=Path, required=True, help="the exported model (.keras) with its .json")
    p.add_argument("--hardware", required=True, help="what it was trained on")
    p.add_argument("--training-time", required=True, help="wall-clock training time")
    args = p.parse_args(argv)
    card = render(args.run, args.model, args.hardware, args.training_time)
    (args.model.parent / "MODEL_CARD.md").write_text(card)
    print(f"wrote {args.model.parent / 'MODEL_CARD.md'}")


if __name__ == "__main__":
    main()
