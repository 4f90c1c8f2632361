"""The export in other runtimes' formats, and proof that they answer as the Keras model does.

- formats: the export's converted formats and Grad-CAM's ONNX graph (imgclf/bundle.py names them)
- onnx_gradients: ONNX converters for the gradient ops Grad-CAM's graph needs
- parity: each format run on the test split beside the Keras model, judged against bounds
"""
