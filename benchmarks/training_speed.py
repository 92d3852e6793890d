"""Training throughput of each model at 64 and 96 px, the input pipeline alone, and peak memory.

    python benchmarks/training_speed.py [--faces 1280] [--steps 24]

Each (model, size) runs in its own process on real UTKFace faces, batch 64: model.fit steps are
timed by a callback (median after warm-up), the tf.data pipeline (gather + augmentation +
normalisation) is timed on its own, and the process's peak resident memory is read at the end.
The pipeline must deliver at least 3x what training consumes, so the cores go to the model.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

from faceage_tf import models

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "..", "shared", "data", "utkface")


def measure(architecture: str, size: int, faces: int, steps: int) -> dict:
    import numpy as np

    from faceage_tf import datasets, pipeline
    from faceage_tf.keras import keras
    from faceage_tf.training import TrainConfig, compile_for_training

    config = TrainConfig(architecture=architecture, schema={"input_size": size}, batch_size=64, epochs=1)
    schema = config.schema
    records, _ = datasets.load_utkface(DATA, validate=False)
    records = records[:: max(1, len(records) // faces)][:faces]
    decoded = pipeline.decode_faces(records, schema)
    labels = pipeline.label_arrays(records, schema)
    model = config.build_model()
    train_model = compile_for_training(model, config, steps_per_epoch=steps)
    keys = list(models.training_outputs(model))

    def dataset():
        return pipeline.training_dataset(decoded, labels, keys, schema, batch_size=64, epochs=1000).take(steps)

    start = time.perf_counter()
    batches = sum(1 for _ in dataset())
    pipeline_rate = batches * 64 / (time.perf_counter() - start)

    class StepTimer(keras.callbacks.Callback):
        times = []

        def on_train_batch_begin(self, batch, logs=None):
            self.start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self.times.append(time.perf_counter() - self.start)

    timer = StepTimer()
    train_model.fit(dataset(), epochs=1, steps_per_epoch=steps, callbacks=[timer], verbose=0)
    step = float(np.median(timer.times[3:]))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"model": architecture, "size": size, "train_img_per_s": 64 / step, "pipeline_img_per_s": pipeline_rate,
            "peak_mib": peak}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces", type=int, default=1280)
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--one", nargs=2, metavar=("MODEL", "SIZE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print("RESULT " + json.dumps(measure(args.one[0], int(args.one[1]), args.faces, args.steps)), flush=True)
        return
    print("| model | size | training img/s | pipeline img/s | pipeline / training | peak memory (MiB) |")
    print("|---|---:|---:|---:|---:|---:|")
    for architecture in models.architectures():
        for size in (64, 96):
            out = subprocess.run([sys.executable, __file__, "--one", architecture, str(size), "--faces", str(args.faces),
                                  "--steps", str(args.steps)], capture_output=True, text=True)
            lines = [l for l in out.stdout.splitlines() if l.startswith("RESULT ")]
            if not lines:
                print(f"| {architecture} | {size} | failed: {out.stderr.strip().splitlines()[-1:]} | | | |")
                continue
            r = json.loads(lines[0][7:])
            print(f"| {architecture} | {size} | {r['train_img_per_s']:.0f} | {r['pipeline_img_per_s']:.0f} | "
                  f"{r['pipeline_img_per_s'] / r['train_img_per_s']:.1f}x | {r['peak_mib']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
