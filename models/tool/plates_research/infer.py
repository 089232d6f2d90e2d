#!/usr/bin/env python3
"""Run the PP-OCRv4 det model (from rapidocr-onnxruntime 1.4.4) over the plate eval photos
and cache the probability maps (uint8, prob*255) so post-processing can be explored cheaply.

Preprocessing follows rapidocr 1.4.4 (ch_ppocr_det/utils.py DetPreProcess):
  BGR uint8 -> cv2.resize(INTER_LINEAR) to a size rounded to multiples of 32
  -> (x/255 - 0.5)/0.5 -> NCHW float32.  Output: sigmoid map [1,1,H,W] at input resolution.

Scale modes:
  min736 : rapidocr default (limit_type=min, limit_side_len=736: upscale so short side >= 736;
           main.py first reduces max side to 2000)
  maxL   : scale (up or down) so that the long side == L, e.g. max960, max1280, max1600

Optional suffix on MODE: "-s" = global contrast stretch (per image, all channels together, 1st..99th
percentile -> 0..255) before resizing; "-c" = CLAHE (clip 2.0, 8x8 tiles) on the L channel of Lab.

usage: python3 infer.py MODE [MODE...]      (cache in /tmp/plates-cache, eval data is not copied)
"""
import glob
import os
import sys
import time

import cv2
import numpy as np
import onnxruntime as ort

# The det model from the wheel `rapidocr-onnxruntime==1.4.4` (wheel sha256 971d7d5f...82cbf, member
# rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx, sha256 d2a7720d...49da9): extract it and
# point VEIL_TEXT_DET at it.
MODEL = os.environ.get("VEIL_TEXT_DET", "ch_PP-OCRv4_det_infer.onnx")
DATA = os.environ.get("VEIL_PLATES_EVAL", os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../../../shared/eval/plates"))
CACHE = "/tmp/plates-cache"


def enhance(img, kind):
    if kind == "s":
        lo, hi = np.percentile(img, [1, 99])
        return np.clip((img.astype(np.float32) - lo) * 255.0 / max(1.0, hi - lo), 0, 255).astype(np.uint8)
    if kind == "c":
        lab = cv2.cvtColor(img, cv2.COLOR_BGR2LAB)
        lab[:, :, 0] = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply(lab[:, :, 0])
        return cv2.cvtColor(lab, cv2.COLOR_LAB2BGR)
    return img


def target_size(h, w, mode):
    mode = mode.split("-")[0]
    if mode == "min736":
        if max(h, w) > 2000:
            r = 2000 / max(h, w)
            h, w = int(h * r), int(w * r)
        r = 736 / min(h, w) if min(h, w) < 736 else 1.0
    elif mode.startswith("max"):
        r = int(mode[3:]) / max(h, w)
    else:
        raise ValueError(mode)
    rh = max(32, int(round(int(h * r) / 32) * 32))
    rw = max(32, int(round(int(w * r) / 32) * 32))
    return rh, rw


def preprocess(img, rh, rw):
    x = cv2.resize(img, (rw, rh)).astype(np.float32)
    x = (x / 255.0 - 0.5) / 0.5
    return x.transpose(2, 0, 1)[None].astype(np.float32)


def main():
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(MODEL, so, providers=["CPUExecutionProvider"])
    for mode in sys.argv[1:]:
        times = []
        for region in ("eu", "us"):
            out = os.path.join(CACHE, mode, region)
            os.makedirs(out, exist_ok=True)
            for lab in sorted(glob.glob(f"{DATA}/{region}/*.txt")):
                name = os.path.splitext(os.path.basename(lab))[0]
                dst = os.path.join(out, name + ".npz")
                if os.path.exists(dst):
                    continue
                fname = open(lab).read().strip().split("\t")[0]
                img = cv2.imread(f"{DATA}/{region}/{fname}", cv2.IMREAD_COLOR)
                if "-" in mode:
                    img = enhance(img, mode.split("-")[1])
                h, w = img.shape[:2]
                rh, rw = target_size(h, w, mode)
                x = preprocess(img, rh, rw)
                t0 = time.perf_counter()
                p = sess.run(None, {"x": x})[0][0, 0]
                dt = time.perf_counter() - t0
                times.append((region, name, h, w, rh, rw, dt))
                np.savez_compressed(dst, p=np.round(p * 255).astype(np.uint8),
                                    shape=np.array([h, w]), t=np.array([dt]))
        if times:
            with open(os.path.join(CACHE, mode, "times.tsv"), "a") as f:
                for t in times:
                    f.write("\t".join(map(str, t)) + "\n")
            dts = np.array([t[-1] for t in times])
            px = np.array([t[4] * t[5] for t in times])
            print(f"{mode}: n={len(times)} mean {dts.mean()*1000:.0f} ms, median {np.median(dts)*1000:.0f} ms, "
                  f"max {dts.max()*1000:.0f} ms, mean input {px.mean()/1e6:.2f} Mpx", flush=True)


if __name__ == "__main__":
    main()
