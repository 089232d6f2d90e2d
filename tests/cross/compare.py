#!/usr/bin/env python3
"""Compare two `veil detect` JSON outputs (x86 and aarch64): same faces, boxes within 1 px."""
import json
import sys

a, b = (json.load(open(p)) for p in sys.argv[1:3])
a = a if isinstance(a, list) else [a]
b = b if isinstance(b, list) else [b]
assert len(a) == len(b), f"{len(a)} vs {len(b)} images"
# Agreement on nothing proves nothing: the photos hold faces, and each build must find them.
assert sum(len(x["detections"]) for x in a) > 0, "no face found on x86"
assert sum(len(y["detections"]) for y in b) > 0, "no face found on aarch64"
for x, y in zip(a, b):
    dx, dy = x["detections"], y["detections"]
    assert len(dx) == len(dy), f"{x['file']}: {len(dx)} faces on x86, {len(dy)} on aarch64"
    for p, q in zip(dx, dy):
        for k in ("x1", "y1", "x2", "y2"):
            assert abs(p["bbox"][k] - q["bbox"][k]) <= 1.0, f"{x['file']}: {k} {p['bbox']} vs {q['bbox']}"
    print(f"{x['file']}: {len(dx)} face(s), boxes equal to 1 px")
