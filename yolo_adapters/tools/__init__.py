"""What users run: the ``yolo-adapters`` CLI, ``check``, ``info`` and ``bench``."""
