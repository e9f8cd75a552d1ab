"""Benchmark stock Ultralytics against yolo_adapters, side by side in one process (see yolo_adapters/bench.py).

    python benchmarks/bench.py --docs docs        # same as: yolo-adapters bench --docs docs
"""

import argparse
import sys

from yolo_adapters import bench

if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="benchmarks/bench.py", description=bench.__doc__)
    bench.add_arguments(parser)
    sys.exit(bench.main(parser.parse_args(), "python benchmarks/bench.py " + " ".join(sys.argv[1:])))
