"""Stand-in for ``npu-smi`` (``info`` and ``info -l`` only), reporting the emulated cards."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    folder = Path(os.environ.get("YOLO_ADAPTERS_EMULATION_DIR", "."))
    config = json.loads((folder / "config.json").read_text())
    with open(folder / "npu_smi_calls.jsonl", "a") as f:
        f.write(json.dumps({"argv": argv}) + "\n")
    cards, chip = int(config["cards"]), str(config["chip"])
    if argv[:2] == ["info", "-l"]:
        print(f"        Total Count                    : {cards}\n")
        for i in range(cards):
            print(
                f"        NPU ID                         : {i}\n        Product Name                   : emulated-{chip}"
            )
            print("        Serial Number                  : EMULATED\n        Chip Count                     : 1\n")
        return 0
    if argv[:1] == ["info"]:
        print("+--------------------------------------------------------------------------------------------+")
        print("| npu-smi emulated (yolo_adapters.testing)        Version: emulated                           |")
        print("+---------------------------+-----------------+----------------------------------------------+")
        print("| NPU     Name              | Health          | Power(W)    Temp(C)           Hugepages-Usage(page)|")
        print("| Chip    Device            | Bus-Id          | AICore(%)   Memory-Usage(MB)                     |")
        print("+===========================+=================+==============================================+")
        for i in range(cards):
            print(f"| {i:<7} {chip:<17} | OK              | NA          40                0    / 0             |")
            print(f"| 0       {i:<17} | 0000:0{i + 1}:00.0    | 0           1400 / 21527                         |")
            print("+===========================+=================+==============================================+")
        return 0
    print(f"npu-smi (emulated): unsupported arguments {argv}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
