"""Training the candidates: the shared recipe, and everything around `model.fit`.

- trainer: `open_trainer`, the skeleton of every train stage (inputs, strategy, outputs)
- scratch: `train_scratch`, a family trained from scratch on augmented pixels
- pretrained: `train_transfer`, a frozen base's cached features, a head (its feature
  standardization), optional fine-tuning
- augmentation: training-time augmentation, kept out of saved models
- fine_tuning: unfreezing the top of a pretrained base
- recipe: epochs, learning-rate schedule, optimizer, loss, class weights
- batches: shuffled batches from memory-mapped arrays, tf.data without autotuning
- fit: `model.fit` with DVCLive, early stopping and several workers
- feature_cache: a frozen base's features computed once for a head to train on
- distribute: tf.distribute strategies and the workers' roles
- multi_worker_fixes: the Keras fixes that multi-worker `fit` needs (version-guarded)
- launcher: `python -m imgclf.training.launcher --workers N stages/train.py <family>`
- malloc_tuning: keeping glibc from returning each step's memory to the kernel
"""
