#!/usr/bin/env python3
"""Camera-like clips made from the pinned fixture photos, for `veil bench --clip` and the
plate-cadence measurement (never committed; `make fixtures` writes them).

    python3 models/tool/clips.py FIXTURES_DIR

Writes FIXTURES_DIR/clips/:
- group-pan/NNNN.jpg: 90 frames, 1280x720, the six-face group photo seen by a camera panning
  and zooming slowly across it (a window of 80-90 % of the photo, resized to 720p);
  group-pan.mp4 beside the directory: the frames as 30 fps H.264 with an AAC track (made by
  GStreamer's gst-launch-1.0), for `veil bench --video`; group-pan.faces.txt:
  `FILE<TAB>x1<TAB>y1<TAB>x2<TAB>y2` of every labelled face (group6.gt moved with the window) wholly
  inside each frame, FILE naming the frame (0000.jpg is the first).
- plate-pan/NNNN.jpg + labels.txt: 90 frames, 1280x720, the Czech car photo enlarged 2.5x and
  driving across a grey street at 6 px a frame; labels.txt holds `FILE<TAB>x<TAB>y<TAB>w<TAB>h`
  of its plate in every frame (the fixture's own label, moved with the car).
"""
import os
import subprocess
import sys

from PIL import Image

FRAMES = 90
SIZE = (1280, 720)


def save(img, path):
    img.save(path + ".part.jpg", quality=90)
    os.replace(path + ".part.jpg", path)


def pan_window(i, W, H):
    """The part (x, y, w, h) of a W x H photo the panning camera sees in frame i."""
    t = i / (FRAMES - 1)
    zoom = 0.9 - 0.1 * t
    w = W * zoom
    h = w * SIZE[1] / SIZE[0]
    x = (W - w) * t
    y = (H - h) * (0.5 + 0.5 * (1 - 2 * abs(t - 0.5)) - 0.25)
    y = min(max(y, 0), H - h)
    return x, y, w, h


def group_pan(fixtures, dest):
    photo = Image.open(os.path.join(fixtures, "group6.jpg")).convert("RGB")
    W, H = photo.size
    for i in range(FRAMES):
        x, y, w, h = pan_window(i, W, H)
        frame = photo.resize(SIZE, Image.BILINEAR, box=(x, y, x + w, y + h))
        save(frame, os.path.join(dest, f"{i:04d}.jpg"))


def group_pan_labels(fixtures, out):
    """The faces of group6.gt in every frame of group-pan (those wholly inside the frame)."""
    W, H = Image.open(os.path.join(fixtures, "group6.jpg")).size
    here = os.path.dirname(os.path.abspath(__file__))
    gt = os.path.join(here, "..", "..", "tests", "fixtures", "group6.gt")
    faces = [[float(v) for v in line.split()] for line in open(gt) if line.strip() and not line.startswith("#")]
    lines = []
    for i in range(FRAMES):
        x, y, w, h = pan_window(i, W, H)
        sx, sy = SIZE[0] / w, SIZE[1] / h
        for x1, y1, x2, y2 in faces:
            box = ((x1 - x) * sx, (y1 - y) * sy, (x2 - x) * sx, (y2 - y) * sy)
            if box[0] >= 0 and box[1] >= 0 and box[2] <= SIZE[0] and box[3] <= SIZE[1]:
                lines.append(f"{i:04d}.jpg\t" + "\t".join(f"{v:.1f}" for v in box))
    tmp = out + ".part"
    with open(tmp, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, out)


def group_pan_video(frames, out):
    """The frames as a 30 fps H.264 MP4 with a tone as AAC audio."""
    tmp = out + ".part.mp4"
    subprocess.run(
        ["gst-launch-1.0", "-q", "multifilesrc", f"location={frames}/%04d.jpg", "index=0", f"stop-index={FRAMES - 1}",
         "caps=image/jpeg,framerate=30/1", "!", "jpegdec", "!", "videoconvert", "!", "x264enc", "speed-preset=veryfast",
         "quantizer=18", "pass=qual", "!", "video/x-h264,profile=high", "!", "h264parse", "!", "mp4mux", "name=m", "!",
         "filesink", f"location={tmp}", "audiotestsrc", "num-buffers=130", "samplesperbuffer=1024", "!",
         "audio/x-raw,rate=44100", "!", "audioconvert", "!", "avenc_aac", "!", "m."],
        check=True,
    )
    os.replace(tmp, out)


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
    clips = os.path.join(fixtures, "clips")
    labels = os.path.join(clips, "group-pan.faces.txt")
    if not os.path.exists(labels):
        group_pan_labels(fixtures, labels)
    video = os.path.join(clips, "group-pan.mp4")
    if not os.path.exists(video):
        group_pan_video(os.path.join(clips, "group-pan"), video)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
