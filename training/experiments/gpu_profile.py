"""Where a GPU training step's time goes (KERAS_BACKEND=torch): augment, forward, backward, step.

    KERAS_BACKEND=torch python -m training.experiments.gpu_profile --pack .gpu/fer2013_jpeg.npz
"""
from __future__ import annotations

import argparse
import time

import numpy as np


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--pack", required=True)
    p.add_argument("--seconds", type=float, default=20, help="per configuration")
    args = p.parse_args(argv)
    import torch

    from training.experiments import gpu_train as g

    dev = "cuda"
    torch.backends.cudnn.benchmark = True
    x = torch.as_tensor(np.random.default_rng(0).integers(0, 255, (4096, 48, 48), dtype=np.uint8), device=dev)
    y = torch.randint(0, 7, (4096,), device=dev)
    gen = torch.Generator(device=dev)
    gen.manual_seed(0)
    for width, batch, amp in ((64, 256, True), (64, 256, False), (64, 1024, True), (32, 1024, True)):
        model = g.build({"width": width, "head": 512})
        opt = torch.optim.SGD(g.param_groups(model, 5e-4), lr=0.01, momentum=0.9, nesterov=True)
        parts = {"augment": 0.0, "forward": 0.0, "backward": 0.0, "step": 0.0}
        steps = 0
        start = time.time()
        while time.time() - start < args.seconds:
            idx = torch.randint(0, 4096, (batch,), device=dev, generator=gen)
            t = time.perf_counter()
            xb = g.augment(torch, x[idx], gen)
            torch.cuda.synchronize(); t1 = time.perf_counter()
            ctx = torch.autocast("cuda", dtype=torch.bfloat16) if amp else torch.autocast("cuda", enabled=False)
            with ctx:
                logits = model(xb, training=True).float()
                loss = torch.nn.functional.cross_entropy(logits, y[idx])
            torch.cuda.synchronize(); t2 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.cuda.synchronize(); t3 = time.perf_counter()
            opt.step()
            torch.cuda.synchronize(); t4 = time.perf_counter()
            if steps >= 3:
                for k, v in zip(parts, (t1 - t, t2 - t1, t3 - t2, t4 - t3)):
                    parts[k] += v
            steps += 1
        n = max(1, steps - 3)
        total = sum(parts.values()) / n
        print(f"width {width} batch {batch} bf16 {amp}: {total * 1000:.1f} ms/step, {batch / total:.0f} img/s; "
              + ", ".join(f"{k} {v / n * 1000:.1f} ms" for k, v in parts.items()), flush=True)


if __name__ == "__main__":
    main()
