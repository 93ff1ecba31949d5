"""Inference and decoding: the Predictor (letterbox, network, decoder, back to image pixels), what
runs the network (backends, runtime: PyTorch or its ONNX export in ONNX Runtime; export, fusion), the
PoseSeg decoder (decode) and the overlay drawing (drawing)."""
