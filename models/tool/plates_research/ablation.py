#!/usr/bin/env python3
"""Ablation of the chosen recipe (what each rule buys) + failure list + 2-fold stability check."""
from plates_eval import *
BEST = Recipe(modes=("max1600-c",), thresh=0.3, box_thresh=0.7, unclip=1.6, ar_min=1.5, ar_max=6, min_h=14,
              post_margin_x=0.5, post_margin_y=0.3)
steps = [
    ("rapidocr defaults @min736 (thr .3 bt .5 unclip 1.6)", Recipe(modes=("min736",))),
    ("same @max1600", Recipe(modes=("max1600",))),
    ("+ margin 0.5h l/r, 0.3h t/b", Recipe(modes=("max1600",), post_margin_x=.5, post_margin_y=.3)),
    ("+ box_thresh 0.7", Recipe(modes=("max1600",), box_thresh=.7, post_margin_x=.5, post_margin_y=.3)),
    ("+ aspect 1.5-6", Recipe(modes=("max1600",), box_thresh=.7, ar_min=1.5, ar_max=6, post_margin_x=.5, post_margin_y=.3)),
    ("+ min height 14 px", dataclasses.replace(BEST, modes=("max1600",))),
    ("+ CLAHE on L (= BEST)", BEST),
    ("BEST without box_thresh 0.7 (0.5)", dataclasses.replace(BEST, box_thresh=.5)),
    ("BEST without aspect filter", dataclasses.replace(BEST, ar_min=0, ar_max=1e9)),
    ("BEST margin 0.3/0.2", dataclasses.replace(BEST, post_margin_x=.3, post_margin_y=.2)),
    ("BEST margin 0.6/0.5", dataclasses.replace(BEST, post_margin_x=.6, post_margin_y=.5)),
    ("BEST + line merge", dataclasses.replace(BEST, merge=True)),
    ("BEST with stretch 1-99% instead of CLAHE", dataclasses.replace(BEST, modes=("max1600-s",))),
    ("BEST @max1280-c", dataclasses.replace(BEST, modes=("max1280-c",))),
    ("BEST @min736-c", dataclasses.replace(BEST, modes=("min736-c",))),
    ("BEST w/o CLAHE @max1280", dataclasses.replace(BEST, modes=("max1280",))),
    ("BEST w/o CLAHE @max960", dataclasses.replace(BEST, modes=("max960",))),
    ("BEST w/o CLAHE @min736", dataclasses.replace(BEST, modes=("min736",))),
    ("BEST w/o CLAHE @max640", dataclasses.replace(BEST, modes=("max640",))),
    ("min736-c minh 18 margin .4/.3 (cheap alt)", dataclasses.replace(BEST, modes=("min736-c",), min_h=18, post_margin_x=.4)),
    ("max960+max1600 (no CLAHE) thr .2 minh 18 m .3/.2", Recipe(modes=("max960", "max1600"), thresh=.2, box_thresh=.7,
        ar_min=1.5, ar_max=6, min_h=18, post_margin_x=.3, post_margin_y=.2)),
]
for name, r in steps:
    print(f"{name:48s} {fmt(evaluate(r))}")
res = evaluate(BEST)
for g in REGIONS:
    print(g, "fails:", res[g]["fails"])
# 2-fold check: does the recipe hold on both halves (alphabetical odd/even)?
import plates_eval as pe
orig = pe.labels
for k in (0, 1):
    pe.labels = lambda region, k=k: orig(region)[k::2]
    print("half", k, fmt(evaluate(BEST)))
pe.labels = orig
