"""Model artifacts: manifest, save/verify/load, import of official RD4AD checkpoints, ONNX."""
