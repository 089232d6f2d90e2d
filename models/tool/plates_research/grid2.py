#!/usr/bin/env python3
"""Focused grid around the CLAHE variants; stdout -> grid2_results.tsv (same columns as grid.py)."""
import itertools
from plates_eval import *
for modes, thr, bt, unc, ar, mh, pm in itertools.product(
        [("min736-c",), ("max1280-c",), ("max1600-c",), ("max1600", "max1600-c")], [0.3, 0.2], [0.5, 0.6, 0.7, 0.75], [1.6, 2.0],
        [(0, 1e9), (1.5, 6), (1.5, 7), (2, 7)], [0, 10, 14, 18],
        [(0.3, 0.2), (0.4, 0.3), (0.5, 0.3), (0.6, 0.5)]):
    r = Recipe(modes=modes, thresh=thr, box_thresh=bt, unclip=unc, ar_min=ar[0], ar_max=ar[1],
               min_h=mh, post_margin_x=pm[0], post_margin_y=pm[1])
    res = evaluate(r)
    print("\t".join(map(str, ["+".join(modes), thr, bt, unc, False, ar[0], ar[1], mh, pm[0], pm[1]] +
          [f"{res[g][k]:.4f}" for g in REGIONS for k in ("full", "half", "prec", "bpi")])), flush=True)
