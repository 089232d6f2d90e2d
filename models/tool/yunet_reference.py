#!/usr/bin/env python3
"""YuNet on onnxruntime, decoded the way libfacedetection decodes it, for the test that holds
veil's tract backend to it.

    python3 yunet_reference.py MODEL.onnx IMAGE [--threshold 0.3]

The image is fed at its own size (padded with zeros to multiples of 32), BGR 0..255. Prints JSON:
every candidate cell scoring at least the threshold, before any suppression:
{"width": W, "height": H, "candidates": [{"score": s, "box": [x1, y1, x2, y2]}, ...]}.
"""
import argparse
import json

import numpy as np
import onnxruntime as ort
from PIL import Image


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("image")
    ap.add_argument("--threshold", type=float, default=0.3)
    args = ap.parse_args()
    rgb = np.asarray(Image.open(args.image).convert("RGB"), np.float32)
    h, w = rgb.shape[:2]
    H, W = -(-h // 32) * 32, -(-w // 32) * 32
    x = np.zeros((1, 3, H, W), np.float32)
    x[0, :, :h, :w] = rgb[:, :, ::-1].transpose(2, 0, 1)
    ort.set_default_logger_severity(3)
    sess = ort.InferenceSession(args.model, providers=["CPUExecutionProvider"])
    outs = sess.run(None, {"input": x})
    found = []
    for level, stride in enumerate((8, 16, 32)):
        cls, obj, reg = (o[0] for o in outs[4 * level:4 * level + 3])
        score = np.sqrt(np.clip(cls[0] * obj[0], 0, None))
        for cy, cx in zip(*np.where(score >= args.threshold)):
            mx, my = (reg[0, cy, cx] + cx) * stride, (reg[1, cy, cx] + cy) * stride
            bw, bh = np.exp(reg[2, cy, cx]) * stride, np.exp(reg[3, cy, cx]) * stride
            box = [max(0.0, mx - bw / 2), max(0.0, my - bh / 2), min(float(w), mx + bw / 2), min(float(h), my + bh / 2)]
            found.append({"score": float(score[cy, cx]), "box": [float(v) for v in box]})
    print(json.dumps({"width": w, "height": h, "candidates": found}))


if __name__ == "__main__":
    main()
