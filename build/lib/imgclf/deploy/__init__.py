"""The export in other runtimes' formats, and proof that they answer as the Keras model does.

- formats: model.onnx, model.tflite, model_int8.tflite and explain.onnx from the export
- onnx_gradients: ONNX converters for the gradient ops Grad-CAM's graph needs
- parity: each format run on the test split beside the Keras model, judged against bounds
"""
