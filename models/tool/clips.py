#!/usr/bin/env python3
"""Camera-like clips made from the pinned fixture photos, for `veil bench --clip` and the
plate-cadence measurement (never committed; `make fixtures` writes them).

    python3 models/tool/clips.py FIXTURES_DIR

Writes FIXTURES_DIR/clips/:
- group-pan/NNNN.jpg: 90 frames, 1280x720, the six-face group photo seen by a camera panning
  and zooming slowly across it (a window of 80-90 % of the photo, resized to 720p).
- plate-pan/NNNN.jpg + labels.txt: 90 frames, 1280x720, the Czech car photo enlarged 2.5x and
  driving across a grey street at 6 px a frame; labels.txt holds `FILE<TAB>x<TAB>y<TAB>w<TAB>h`
  of its plate in every frame (the fixture's own label, moved with the car).
"""
import os
import sys

from PIL import Image

FRAMES = 90
SIZE = (1280, 720)


def save(img, path):
    img.save(path + ".part.jpg", quality=90)
    os.replace(path + ".part.jpg", path)


def group_pan(fixtures, dest):
    photo = Image.open(os.path.join(fixtures, "group6.jpg")).convert("RGB")
    W, H = photo.size
    for i in range(FRAMES):
        t = i / (FRAMES - 1)
        zoom = 0.9 - 0.1 * t
        w = W * zoom
        h = w * SIZE[1] / SIZE[0]
        x = (W - w) * t
        y = (H - h) * (0.5 + 0.5 * (1 - 2 * abs(t - 0.5)) - 0.25)
        y = min(max(y, 0), H - h)
        frame = photo.resize(SIZE, Image.BILINEAR, box=(x, y, x + w, y + h))
        save(frame, os.path.join(dest, f"{i:04d}.jpg"))


def plate_pan(fixtures, dest):
    car = Image.open(os.path.join(fixtures, "plates", "cz", "skoda.png")).convert("RGB")
    label = open(os.path.join(fixtures, "plates", "cz", "skoda.txt")).read().split("\t")
    px, py, pw, ph = (float(v) for v in label[1:5])
    scale = 2.5
    car = car.resize((round(car.width * scale), round(car.height * scale)), Image.BICUBIC)
    lines = []
    for i in range(FRAMES):
        frame = Image.new("RGB", SIZE, (118, 118, 112))
        x0, y0 = -200 + 6 * i, (SIZE[1] - car.height) // 2
        frame.paste(car, (x0, y0))
        name = f"{i:04d}.jpg"
        save(frame, os.path.join(dest, name))
        lines.append(f"{name}\t{x0 + px * scale:.1f}\t{y0 + py * scale:.1f}\t{pw * scale:.1f}\t{ph * scale:.1f}")
    with open(os.path.join(dest, "labels.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


def main(argv):
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    fixtures = argv[0]
    for name, make in (("group-pan", group_pan), ("plate-pan", plate_pan)):
        dest = os.path.join(fixtures, "clips", name)
        done = os.path.join(dest, ".complete")
        if os.path.exists(done):
            continue
        os.makedirs(dest, exist_ok=True)
        make(fixtures, dest)
        open(done, "w").close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
