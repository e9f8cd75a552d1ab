"""The Ultralytics integration: the patch layer, the engine module Ultralytics gets instead of its AutoBackend,
the stream pipeline, the export through Ultralytics' exporter, and process-wide activation.
"""
