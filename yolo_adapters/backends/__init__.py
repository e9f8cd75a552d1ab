"""Engine plugins: ``base`` (what a plugin, an engine and an export plan are) and one package per engine.

``openvino``, ``onnxruntime`` and ``ascend`` are siblings that never import each other (import-linter checks it);
each is found through the ``yolo_adapters.backends`` entry-point group like a third-party plugin would be, so nothing
below them imports them.
"""
