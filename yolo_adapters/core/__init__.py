"""The core every other package builds on: settings, process state, the plugin registry, device routing, the
conversion cache, model metadata and the bundled assets. Nothing here imports Ultralytics or an engine.
"""
