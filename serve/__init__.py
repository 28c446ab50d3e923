"""Sampling side of the project: numpy, Pillow and onnxruntime only, never torch."""
