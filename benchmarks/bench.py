"""The maintainers' benchmark run: `yolo-adapters bench`, then docs/benchmarks.md's generated block and its plot.

    python benchmarks/bench.py --docs docs        # measure, print, and rewrite docs/benchmarks.md + benchmark.png

Users measure their own machine with `yolo-adapters bench` (yolo_adapters/bench.py, the same rows and table); this
script adds the bookkeeping of the reference run: the block between the ``bench:start``/``bench:end`` markers of
docs/benchmarks.md, the plot and the raw ``benchmark.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from yolo_adapters.tools import bench
from yolo_adapters.tools.bench import render, summarise


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = summarise(report)
    labels = [r["row"] for r in table]
    fps = [r["fps"] for r in table]
    err = [[r["fps"] - r["fps_min"] for r in table], [r["fps_max"] - r["fps"] for r in table]]
    fig, ax = plt.subplots(figsize=(12, 0.5 * len(labels) + 1.5))
    colors = [
        "#1f77b4" if label.startswith("yolo_adapters") else "#7f7f7f" if label.startswith("Ultralytics") else "#2ca02c"
        for label in labels
    ]
    ax.barh(labels, fps, xerr=err, color=colors, capsize=3)
    ax.invert_yaxis()
    ax.set_xlabel("frames per second, end to end (median; bars: min-max over repeats)")
    ax.set_title(
        f"yolo11n-pose, imgsz {report['imgsz']}, CPU, FP32 unless INT8 or BF16, {report['frames']}-frame 1280x720 stream",
        loc="right",
    )
    ax.set_xlim(0, max(r["fps_max"] for r in table) * 1.15)  # room for the value labels
    for y, r in enumerate(table):
        ax.text(r["fps_max"], y, f"  {r['fps']:.1f}", va="center")  # past the error bar
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")  # long row labels must not push the title off the canvas
    plt.close(fig)


def write_docs(report: dict[str, Any], command: str, docs: Path) -> Path:
    docs.mkdir(parents=True, exist_ok=True)
    plot(report, docs / "benchmark.png")
    page = docs / "benchmarks.md"
    marker_start, marker_end = "<!-- bench:start -->", "<!-- bench:end -->"
    block = (
        f"{marker_start}\n\nMachine: {report['machine']}.\n\nCommand: `{command}`\n\n"
        f"{report['frames']}-frame stream, {report['imgsz']}x{report['imgsz']}, CPU, FP32 unless INT8 or BF16, {report['repeats']} interleaved "
        f"repeats (PyTorch fewer: it is slow and only a reference).\n\n{render(report, command)}\n\n"
        f"![benchmark](benchmark.png)\n\n{marker_end}"
    )
    if page.exists() and marker_start in page.read_text():
        text = page.read_text()
        head, _, rest = text.partition(marker_start)
        _, _, tail = rest.partition(marker_end)
        page.write_text(head + block + tail)
    else:
        page.write_text(f"# Benchmarks\n\n{block}\n")
    (docs / "benchmark.json").write_text(json.dumps({k: v for k, v in report.items()}, indent=1))
    return page


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks/bench.py", description=__doc__)
    bench.add_arguments(parser)
    parser.add_argument("--docs", help="write benchmarks.md + benchmark.png into this folder (e.g. docs)")
    args = parser.parse_args(argv)
    command = "python benchmarks/bench.py " + " ".join(sys.argv[1:] if argv is None else argv)
    report = bench.run(args)
    print(json.dumps(report, indent=1) if args.json else render(report, command))
    if args.docs:
        print(f"written: {write_docs(report, command, Path(args.docs))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
