"""Using an export: `Predictor` (load once, predict a file) and batch prediction of folders.

- predictor: `Predictor.load("models/best").predict("photo.jpg")`
- batch_predict: many files and folders, decoded ahead and predicted in batches (`imgclf predict`)
- ray_predict: the same on Ray Data actors, into resumable Parquet shards
  (`imgclf predict --engine ray`; needs `imgclf[ray]`)
"""

from imgclf.serving.predictor import ModelNotExportedError, Predictor

__all__ = ["ModelNotExportedError", "Predictor"]
