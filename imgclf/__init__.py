"""imgclf: the code shared by the pipeline stages, the web app and the command line."""

import os

# TensorFlow's C++ runtime prints start-up notes and harmless graph warnings on every
# run; Python exceptions still report real failures. Set the variable to see them.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
