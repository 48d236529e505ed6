"""Model level: CNN-TA and LightGBM classifiers, ONNX export and inference."""
