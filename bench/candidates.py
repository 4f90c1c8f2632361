"""Every trained candidate's test accuracy, for the benchmark's report (never for selection).

    python -m bench.candidates PROJECT RESULT_JSON     (run by bench_quality)

The pipeline measures only the selected model on the test split; a benchmark
wants to see what the others would have scored too.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import keras

from imgclf import models, paths
from imgclf.data.prepared import read_split
from imgclf.models.inference import inference_batch_size


def main() -> None:
    project, out = Path(sys.argv[1]), Path(sys.argv[2])
    test = read_split("test", project / paths.PREPARED, mmap=False)
    images = test.images.astype("float32")
    accuracy = {}
    for family in models.families():
        model = keras.models.load_model(paths.trained_model(family.name, project))
        batch = inference_batch_size(images.shape[1])
        predicted = model.predict(images, batch_size=batch, verbose=0).argmax(axis=1)
        accuracy[family.name] = float((predicted == test.labels).mean())
    out.write_text(json.dumps(accuracy, indent=2))


if __name__ == "__main__":
    main()
