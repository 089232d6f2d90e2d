#!/usr/bin/env python3
"""onnxruntime reference timings for `veil bench`: the same model file and frame sizes, run by
onnxruntime on the CPU, so one bench run prints veil/onnxruntime ratios.

    python3 ort_reference.py MODEL.onnx --sizes 640x480,1280x720 --iterations 15 --threads 1
Prints JSON: {"onnxruntime": VERSION, "results": [{"size": "640x480", "threads": 1,
"median_ms": .., "p95_ms": .., "samples": N}, ...]}
"""
import argparse
import json
import time

import numpy as np
import onnx
import onnxruntime as ort


def dynamic(model_path):
    m = onnx.load(model_path)
    inits = {i.name for i in m.graph.initializer}
    keep = [i for i in m.graph.input if i.name not in inits]
    del m.graph.input[:]
    m.graph.input.extend(keep)
    dims = m.graph.input[0].type.tensor_type.shape.dim
    dims[0].dim_value = 1
    for d, name in ((dims[2], "H"), (dims[3], "W")):
        d.ClearField("dim_value")
        d.dim_param = name
    for o in m.graph.output:
        o.type.tensor_type.ClearField("shape")
    del m.graph.value_info[:]
    return m.SerializeToString()


def pct(sorted_vals, p):
    k = min(len(sorted_vals) - 1, max(0, int(round(p / 100 * (len(sorted_vals) - 1)))))
    return sorted_vals[k]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--sizes", default="640x480")
    ap.add_argument("--iterations", type=int, default=15)
    ap.add_argument("--threads", default="1")
    args = ap.parse_args()
    ort.set_default_logger_severity(3)
    blob = dynamic(args.model)
    rng = np.random.default_rng(7)
    results = []
    for threads in [int(t) for t in args.threads.split(",")]:
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        sess = ort.InferenceSession(blob, so, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        for size in args.sizes.split(","):
            w, h = (int(v) for v in size.split("x"))
            W, H = -(-w // 32) * 32, -(-h // 32) * 32
            x = rng.uniform(0, 255, size=(1, 3, H, W)).astype(np.float32)
            sess.run(None, {name: x})
            times = []
            for _ in range(args.iterations):
                t = time.perf_counter()
                sess.run(None, {name: x})
                times.append((time.perf_counter() - t) * 1000)
            times.sort()
            results.append({"size": size, "threads": threads, "median_ms": pct(times, 50),
                            "p95_ms": pct(times, 95), "samples": len(times)})
    print(json.dumps({"onnxruntime": ort.__version__, "results": results}))


if __name__ == "__main__":
    main()
