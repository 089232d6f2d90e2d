#!/usr/bin/env python3
"""Grid search over post-processing (dedup=0.5 on); stdout -> grid_results.tsv, one row per recipe.
columns: modes thresh box_thresh unclip merge ar_min ar_max min_h post_margin_x post_margin_y,
then for eu and us: full half prec boxes_per_image."""
import itertools, sys
from plates_eval import *

MODES = [("max640",), ("min736",), ("max960",), ("max1280",), ("max1600",), ("max960", "max1600"), ("min736", "max1280"), ("max1280", "max1600")]
rows = []
for modes, thr, bt, unc, merge, ar, mh, pm in itertools.product(
        MODES, [0.3, 0.2], [0.5, 0.6, 0.7, 0.8], [1.6, 2.0], [False, True],
        [(0, 1e9), (1.5, 6), (2, 6)], [0, 10, 14, 18, 22],
        [(0.3, 0.2), (0.5, 0.3), (0.6, 0.5)]):
    r = Recipe(modes=modes, thresh=thr, box_thresh=bt, unclip=unc, merge=merge, ar_min=ar[0], ar_max=ar[1],
               min_h=mh, post_margin_x=pm[0], post_margin_y=pm[1])
    res = evaluate(r)
    rows.append((r, res))
    print("\t".join(map(str, ["+".join(modes), thr, bt, unc, merge, ar[0], ar[1], mh, pm[0], pm[1]] +
          [f"{res[g][k]:.4f}" for g in REGIONS for k in ("full", "half", "prec", "bpi")])), flush=True)
