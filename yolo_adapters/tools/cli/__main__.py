"""``python -m yolo_adapters.tools.cli`` == ``yolo-adapters``."""

import sys

from yolo_adapters.tools.cli import main

sys.exit(main())
