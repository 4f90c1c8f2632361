"""Training the candidates: the shared recipe, and everything around `model.fit`.

- run: `trainer_run`, the skeleton of every train stage (inputs, strategy, outputs)
- recipe: seeding, epochs, learning-rate schedule, optimizer, loss, class weights
- batches: batches from memory-mapped arrays, prediction batch by batch
- fit: `model.fit` with DVCLive, early stopping and several workers
- feature_cache: a frozen base's features computed once for a head to train on
- fine_tuning: unfreezing the top of a pretrained base
- distribute: tf.distribute strategies and the workers' roles
- keras_mends: the Keras fixes that multi-worker `fit` needs (version-guarded)
- launcher: `python -m imgclf.training.launcher --workers N stages/train_<family>.py`
- native_memory: keeping glibc from returning each step's memory to the kernel
"""
