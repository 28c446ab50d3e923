"""Export stage: training checkpoint -> TorchScript and ONNX model files."""
