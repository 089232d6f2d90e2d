#!/usr/bin/env python3
"""Variants of the PP-OCRv4 text detector made to see whether tract 0.23 runs any of them faster
than the upstream fp32 file (time each with
`cargo run -p veil-models --example profile_ops -- FILE 640 480`):

  clean.onnx          the upstream model with its Constant-node weights as initializers
  int8-neck3x3.onnx   QOperator int8 (onnxruntime's static quantizer, minmax on fixture photos)
                      for the five 3x3 group-1 convs of the neck and head only
  int8-all.onnx       the same for every group-1 conv but the stem
  split.onnx          each 3x3 conv (96 -> 24) as a 1x1 conv to 9 x 24 channels, padded, and the
                      nine shifted slices summed (no im2col); exact to 1.5e-7

usage: python3 tract_speed_probes.py MODEL.onnx OUT_DIR   (needs onnx, onnxruntime, numpy, PIL)
Results are in README.md of this folder.
"""
import glob
import os
import sys

import numpy as np
import onnx
from onnx import helper, numpy_helper
from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                      quantize_static)
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
PHOTOS = os.path.join(HERE, "../../../tests/fixtures/cache")


def constants_as_initializers(model):
    g = model.graph
    keep = []
    for n in g.node:
        if n.op_type == "Constant":
            t = next(a.t for a in n.attribute if a.name == "value")
            t.name = n.output[0]
            g.initializer.append(t)
        else:
            keep.append(n)
    del g.node[:]
    g.node.extend(keep)
    return model


def group(n):
    return next((a.i for a in n.attribute if a.name == "group"), 1)


class Photos(CalibrationDataReader):
    def __init__(self):
        files = sorted(glob.glob(f"{PHOTOS}/*.jpg") + glob.glob(f"{PHOTOS}/*.png"))
        files += sorted(glob.glob(f"{PHOTOS}/plates/vn/*.png"))[:6]
        items = []
        for p in files:
            a = np.asarray(Image.open(p).convert("RGB").resize((640, 480)), dtype=np.float32)[:, :, ::-1] / 255.0
            items.append({"x": ((a - 0.5) / 0.5).transpose(2, 0, 1)[None].astype(np.float32)})
        self.it = iter(items)

    def get_next(self):
        return next(self.it, None)


def quantized(clean_path, out_path, names):
    quantize_static(clean_path, out_path, Photos(), quant_format=QuantFormat.QOperator,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, per_channel=False,
                    calibrate_method=CalibrationMethod.MinMax, nodes_to_quantize=names,
                    extra_options={"ActivationSymmetric": False, "WeightSymmetric": True})
    m = onnx.load(out_path)
    del m.graph.value_info[:]
    for o in m.graph.output:
        o.type.tensor_type.ClearField("shape")
    d = m.graph.input[0].type.tensor_type.shape.dim
    d[0].ClearField("dim_param")
    d[0].dim_value = 1
    onnx.save(m, out_path)


def split_3x3(model):
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    nodes, extra, end = [], [], lambda d: d - 2 if d < 2 else 2 ** 62
    for n in g.node:
        att = {a.name: a for a in n.attribute}
        if not (n.op_type == "Conv" and list(att["kernel_shape"].ints) == [3, 3] and group(n) == 1
                and list(att["strides"].ints) == [1, 1] and list(att["pads"].ints) == [1, 1, 1, 1]
                and len(n.input) == 2):
            nodes.append(n)
            continue
        w = numpy_helper.to_array(inits[n.input[1]])
        o, c = w.shape[:2]
        p = n.name
        w9 = np.concatenate([w[:, :, dy, dx] for dy in range(3) for dx in range(3)], 0).reshape(9 * o, c, 1, 1)
        extra += [numpy_helper.from_array(w9.astype(np.float32), p + ".w9"),
                  numpy_helper.from_array(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), p + ".pads")]
        nodes += [helper.make_node("Conv", [n.input[0], p + ".w9"], [p + ".z"], name=p + ".z", kernel_shape=[1, 1]),
                  helper.make_node("Pad", [p + ".z", p + ".pads"], [p + ".zp"], name=p + ".pad", mode="constant")]
        acc = None
        for k, (dy, dx) in enumerate((a, b) for a in range(3) for b in range(3)):
            extra += [numpy_helper.from_array(np.array([k * o, dy, dx], np.int64), f"{p}.s{k}"),
                      numpy_helper.from_array(np.array([(k + 1) * o, end(dy), end(dx)], np.int64), f"{p}.e{k}"),
                      numpy_helper.from_array(np.array([1, 2, 3], np.int64), f"{p}.ax{k}")]
            nodes.append(helper.make_node("Slice", [p + ".zp", f"{p}.s{k}", f"{p}.e{k}", f"{p}.ax{k}"],
                                          [f"{p}.sl{k}"], name=f"{p}.sl{k}"))
            if acc is None:
                acc = f"{p}.sl{k}"
            else:
                out = n.output[0] if k == 8 else f"{p}.acc{k}"
                nodes.append(helper.make_node("Add", [acc, f"{p}.sl{k}"], [out], name=f"{p}.add{k}"))
                acc = out
    del g.node[:]
    g.node.extend(nodes)
    g.initializer.extend(extra)
    return model


def main(model_path, out):
    os.makedirs(out, exist_ok=True)
    clean_path = os.path.join(out, "clean.onnx")
    model = constants_as_initializers(onnx.load(model_path))
    onnx.save(model, clean_path)
    inits = {i.name: i for i in model.graph.initializer}
    convs = [n for n in model.graph.node if n.op_type == "Conv" and group(n) == 1 and n.name != "p2o.Conv.0"]
    quantized(clean_path, os.path.join(out, "int8-neck3x3.onnx"), [n.name for n in convs if inits[n.input[1]].dims[2] == 3])
    quantized(clean_path, os.path.join(out, "int8-all.onnx"), [n.name for n in convs])
    onnx.save(split_3x3(constants_as_initializers(onnx.load(model_path))), os.path.join(out, "split.onnx"))


if __name__ == "__main__":
    main(*sys.argv[1:3])
