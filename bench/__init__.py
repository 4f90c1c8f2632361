"""The benchmarks (see docs/benchmarks.md for what each measures and its figures).

imgclf is imported first, as every entry point does: its TensorFlow defaults (oneDNN
kernels on) then apply to every benchmark and to the processes it starts, so a
benchmark measures the kernels the pipeline runs on.
"""

import imgclf  # noqa: F401
