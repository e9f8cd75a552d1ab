"""python -m yolo_adapters == yolo-adapters."""

import sys

from .cli import main

sys.exit(main())
