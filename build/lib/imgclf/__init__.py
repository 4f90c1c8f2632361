"""imgclf: the code shared by the pipeline stages, the web app and the command line.

Importing it sets two TensorFlow defaults, so every entry point (stage scripts, the
`imgclf` command, the web app) imports it before TensorFlow; a variable already set
in the environment wins.
"""

import os

# TensorFlow's C++ runtime prints start-up notes and harmless graph warnings on every
# run; Python exceptions still report real failures. Set the variable to see them.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# TensorFlow's x86 wheels turn their oneDNN kernels on by default only on CPUs with
# AVX-512 VNNI, BF16 or AMX; on other CPUs they train faster with them (docs/pipeline.md,
# "Speed on a CPU"). Where TensorFlow already turns them on, this changes nothing.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
