"""python -m yolo_adapters == yolo-adapters."""

import sys

from yolo_adapters.tools.cli import main

sys.exit(main())
