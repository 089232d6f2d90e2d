#!/usr/bin/env python3
"""Post-processing + scoring of PP-OCRv4 det probability maps (cached by infer.py) for plate masking.

Pipeline per image (all parameters in Recipe):
  1. for each scale mode: bin = prob > thresh; optional 2x2 dilation (rapidocr use_dilation=True)
  2. contours (cv2.findContours RETR_LIST) -> minAreaRect; drop if short side < 3 (map px)
  3. score = mean prob inside the rect ("fast" mode); drop if < box_thresh
  4. unclip: d = area * unclip_ratio / perimeter of the rect; rect grows by 2d in both dims
     (same as rapidocr's pyclipper offset + minAreaRect); drop if short side < 5
  5. axis-aligned bounding box of the grown rect, mapped to original pixels (x and y ratios)
  6. union over scale modes; optional margin (fraction of box height, each side);
     dedup: union boxes overlapping >= 50% of the smaller one (removes duplicates across scales)
  7. optional merge of boxes on one text line (vertical overlap >= merge_vov of the smaller height,
     heights within merge_hratio, horizontal gap <= merge_gap * max height); iterate to fixpoint
  8. optional geometry filter on the merged boxes: aspect w/h in [ar_min, ar_max], height >= min_h px
     (an optional final margin is applied after the filter)

Scoring per region (one labelled plate per photo):
  full  : union of boxes covers >= 95% of the inner plate box (box shrunk by 8% of w left/right,
          15% of h top/bottom)
  half  : union covers >= 50% of the (unshrunk) plate box (comparison with the earlier figure)
  prec  : box is TP if intersection with plate box >= 30% of the box's area; prec = TP / all boxes
          (naive: unlabelled plates in the photos count as FP)
"""
import dataclasses
import glob
import os
from functools import lru_cache

import cv2
import numpy as np

DATA = os.environ.get("VEIL_PLATES_EVAL", os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../../../shared/eval/plates"))
CACHE = "/tmp/plates-cache"
REGIONS = ("eu", "us")


@dataclasses.dataclass(frozen=True)
class Recipe:
    modes: tuple = ("min736",)
    thresh: float = 0.3
    box_thresh: float = 0.5
    unclip: float = 1.6
    dilate: bool = True
    aabb: bool = False         # axis-aligned component bbox instead of minAreaRect (simpler to port)
    cc: bool = False           # 8-connected components; bbox + score = mean prob over the component's
                               # pixels (no contours / minAreaRect / polygon fill: simplest to port)
    margin_x: float = 0.0      # each side, fraction of box height (before merge)
    margin_y: float = 0.0
    dedup: float = 0.5         # union boxes whose intersection >= dedup * smaller area (0 = off)
    merge: bool = False
    merge_vov: float = 0.5
    merge_hratio: float = 2.0
    merge_gap: float = 1.0
    ar_min: float = 0.0
    ar_max: float = 1e9
    min_h: float = 0.0
    post_margin_x: float = 0.0  # each side, fraction of box height (after filter)
    post_margin_y: float = 0.0


def labels(region):
    out = []
    for lab in sorted(glob.glob(f"{DATA}/{region}/*.txt")):
        f, x, y, w, h, txt = open(lab).read().rstrip("\n").split("\t")
        out.append((os.path.splitext(os.path.basename(lab))[0], f, (int(x), int(y), int(w), int(h)), txt))
    return out


@lru_cache(maxsize=None)
def prob(mode, region, name):
    z = np.load(f"{CACHE}/{mode}/{region}/{name}.npz")
    return z["p"], tuple(z["shape"])


@lru_cache(maxsize=None)
def raw_rects(mode, region, name, thresh, dilate, aabb=False):
    """Rotated rects (cx, cy, w, h, angle, score) in map pixels + map->orig scale."""
    p, (H0, W0) = prob(mode, region, name)
    H, W = p.shape
    bm = (p > int(round(thresh * 255))).astype(np.uint8)
    if dilate:
        bm = cv2.dilate(bm, np.ones((2, 2), np.uint8))
    contours, _ = cv2.findContours(bm * 255, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    pf = p.astype(np.float32) / 255.0
    rects = []
    if aabb == "cc":
        n, lab, st, _ = cv2.connectedComponentsWithStats(bm, connectivity=8)
        sums = np.bincount(lab.ravel(), weights=pf.ravel(), minlength=n)
        for i in range(1, min(n, 1001)):
            bx, by, bw, bh, area = st[i]
            if min(bw, bh) - 1 < 3:
                continue
            rects.append((bx + (bw - 1) / 2, by + (bh - 1) / 2, bw - 1, bh - 1, 0.0, sums[i] / area))
        return rects, W0 / W, H0 / H, W0, H0
    for c in contours[:1000]:
        if aabb:
            bx, by, bw, bh = cv2.boundingRect(c)
            (cx, cy), (rw, rh), ang = (bx + (bw - 1) / 2, by + (bh - 1) / 2), (bw - 1, bh - 1), 0.0
        else:
            (cx, cy), (rw, rh), ang = cv2.minAreaRect(c)
        if min(rw, rh) < 3:
            continue
        pts = cv2.boxPoints(((cx, cy), (rw, rh), ang))
        x0 = int(np.clip(np.floor(pts[:, 0].min()), 0, W - 1)); x1 = int(np.clip(np.ceil(pts[:, 0].max()), 0, W - 1))
        y0 = int(np.clip(np.floor(pts[:, 1].min()), 0, H - 1)); y1 = int(np.clip(np.ceil(pts[:, 1].max()), 0, H - 1))
        m = np.zeros((y1 - y0 + 1, x1 - x0 + 1), np.uint8)
        q = pts.copy(); q[:, 0] -= x0; q[:, 1] -= y0
        cv2.fillPoly(m, q.reshape(1, -1, 2).astype(np.int32), 1)
        score = cv2.mean(pf[y0:y1 + 1, x0:x1 + 1], m)[0]
        rects.append((cx, cy, rw, rh, ang, score))
    return rects, W0 / W, H0 / H, W0, H0


def boxes_for(r: Recipe, region, name):
    out = []
    for mode in r.modes:
        rects, sx, sy, W0, H0 = raw_rects(mode, region, name, r.thresh, r.dilate, "cc" if r.cc else r.aabb)
        for cx, cy, rw, rh, ang, score in rects:
            if score < r.box_thresh:
                continue
            d = rw * rh * r.unclip / (2 * (rw + rh))
            if min(rw, rh) + 2 * d < 5:
                continue
            pts = cv2.boxPoints(((cx, cy), (rw + 2 * d, rh + 2 * d), ang))
            x0 = max(0.0, pts[:, 0].min() * sx); x1 = min(W0, pts[:, 0].max() * sx)
            y0 = max(0.0, pts[:, 1].min() * sy); y1 = min(H0, pts[:, 1].max() * sy)
            out.append([x0, y0, x1, y1])
        Wimg, Himg = W0, H0
    out = [expand(b, r.margin_x, r.margin_y, Wimg, Himg) for b in out]
    if r.dedup:
        out = dedup_boxes(out, r.dedup)
    if r.merge:
        out = merge_lines(out, r)
    out = [b for b in out if (b[3] - b[1]) >= r.min_h and
           r.ar_min <= (b[2] - b[0]) / max(1e-6, b[3] - b[1]) <= r.ar_max]
    out = [expand(b, r.post_margin_x, r.post_margin_y, Wimg, Himg) for b in out]
    return out


def expand(b, mx, my, W, H):
    if mx == 0 and my == 0:
        return b
    h = b[3] - b[1]
    return [max(0.0, b[0] - mx * h), max(0.0, b[1] - my * h), min(W, b[2] + mx * h), min(H, b[3] + my * h)]


def dedup_boxes(boxes, frac):
    """Union boxes (e.g. the same text found at two scales) whose overlap >= frac of the smaller box."""
    boxes = [list(b) for b in boxes]
    changed = True
    while changed:
        changed = False
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                a, b = boxes[i], boxes[j]
                iw = min(a[2], b[2]) - max(a[0], b[0]); ih = min(a[3], b[3]) - max(a[1], b[1])
                if iw <= 0 or ih <= 0:
                    continue
                amin = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
                if iw * ih >= frac * amin:
                    boxes[i] = [min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])]
                    del boxes[j]
                    changed = True
                    break
            if changed:
                break
    return boxes


def merge_lines(boxes, r):
    boxes = [list(b) for b in boxes]
    changed = True
    while changed:
        changed = False
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                a, b = boxes[i], boxes[j]
                ha, hb = a[3] - a[1], b[3] - b[1]
                vov = min(a[3], b[3]) - max(a[1], b[1])
                if vov < r.merge_vov * min(ha, hb):
                    continue
                if max(ha, hb) > r.merge_hratio * min(ha, hb):
                    continue
                gap = max(a[0], b[0]) - min(a[2], b[2])
                if gap > r.merge_gap * max(ha, hb):
                    continue
                boxes[i] = [min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])]
                del boxes[j]
                changed = True
                break
            if changed:
                break
    return boxes


def coverage(boxes, rect):
    x0, y0, x1, y1 = rect
    W, H = int(round(x1 - x0)), int(round(y1 - y0))
    if W <= 0 or H <= 0:
        return 1.0
    m = np.zeros((H, W), bool)
    for b in boxes:
        bx0 = int(np.floor(max(b[0], x0) - x0)); bx1 = int(np.ceil(min(b[2], x1) - x0))
        by0 = int(np.floor(max(b[1], y0) - y0)); by1 = int(np.ceil(min(b[3], y1) - y0))
        if bx1 > bx0 and by1 > by0:
            m[by0:by1, bx0:bx1] = True
    return m.mean()


def score_image(boxes, plate):
    x, y, w, h = plate
    inner = (x + 0.08 * w, y + 0.15 * h, x + 0.92 * w, y + 0.85 * h)
    full = coverage(boxes, inner) >= 0.95
    half = coverage(boxes, (x, y, x + w, y + h)) >= 0.5
    tp = 0
    for b in boxes:
        iw = min(b[2], x + w) - max(b[0], x); ih = min(b[3], y + h) - max(b[1], y)
        area = (b[2] - b[0]) * (b[3] - b[1])
        if iw > 0 and ih > 0 and iw * ih >= 0.3 * area:
            tp += 1
    return full, half, tp, len(boxes)


def evaluate(r: Recipe, details=False):
    res = {}
    for region in REGIONS:
        L = labels(region)
        F = Hf = TP = N = 0
        fails = []
        for name, f, plate, txt in L:
            bx = boxes_for(r, region, name)
            full, half, tp, n = score_image(bx, plate)
            F += full; Hf += half; TP += tp; N += n
            if not full:
                fails.append(name)
        res[region] = dict(n=len(L), full=F / len(L), half=Hf / len(L), prec=TP / max(1, N),
                           bpi=N / len(L), fails=fails)
    return res


def fmt(res):
    return "  ".join(f"{k}: full {v['full']*100:5.1f}% half {v['half']*100:5.1f}% prec {v['prec']:.2f} "
                     f"boxes/img {v['bpi']:.1f}" for k, v in res.items())


if __name__ == "__main__":
    print(fmt(evaluate(Recipe())))
