"""Comparison of an engine's answers with PyTorch's: the parity tolerances and the per-task comparison of two
Ultralytics ``Results``.
"""
