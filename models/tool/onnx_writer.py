"""The few ONNX messages a converted graph needs, written as protobuf bytes with the standard
library and numpy (no `onnx` package), so a machine or a Yocto build that has only python3 and
numpy can convert a model.

Fields are written in field-number order with proto2's rules (ONNX's .proto is proto2: a field
set explicitly is written even when it holds its default, repeated scalars are not packed), which
is how the `onnx` package serialises the same messages, so a model written here is byte for byte
the one `onnx.helper` + `SerializeToString()` would give (the manifest's sha256 holds that).
"""
import struct

import numpy as np

# TensorProto.DataType
FLOAT, INT32, INT64 = 1, 6, 7
_NUMPY_TYPES = {np.dtype(np.float32): FLOAT, np.dtype(np.int32): INT32, np.dtype(np.int64): INT64}
# AttributeProto.AttributeType
_ATTR_FLOAT, _ATTR_INT, _ATTR_STRING, _ATTR_INTS = 1, 2, 3, 7


def _varint(value):
    value &= (1 << 64) - 1  # int64 is written as its two's complement
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _int(field, value):
    return _varint(field << 3) + _varint(int(value))


def _bytes(field, data):
    return _varint(field << 3 | 2) + _varint(len(data)) + data


def _str(field, text):
    return _bytes(field, text.encode("utf-8"))


def _float(field, value):
    return _varint(field << 3 | 5) + struct.pack("<f", value)


def tensor(name, array):
    """TensorProto of a numpy array (dims, data type, name, raw little-endian data)."""
    array = np.asarray(array, order="C")  # (np.ascontiguousarray would make a 0-d scalar 1-d)
    if array.dtype not in _NUMPY_TYPES:
        raise ValueError(f"{name}: no ONNX type written for {array.dtype}")
    out = b"".join(_int(1, d) for d in array.shape)
    out += _int(2, _NUMPY_TYPES[array.dtype]) + _str(8, name)
    return out + _bytes(9, array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes())


def _attribute(name, value):
    out = _str(1, name)
    if isinstance(value, bool) or isinstance(value, (int, np.integer)):
        return out + _int(3, value) + _int(20, _ATTR_INT)
    if isinstance(value, float):
        return out + _float(2, value) + _int(20, _ATTR_FLOAT)
    if isinstance(value, str):
        return out + _str(4, value) + _int(20, _ATTR_STRING)
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, (int, np.integer)) for v in value):
        return out + b"".join(_int(8, v) for v in value) + _int(20, _ATTR_INTS)
    raise ValueError(f"attribute {name}: no ONNX type written for {value!r}")


def node(op_type, inputs, outputs, name, **attrs):
    """NodeProto; attributes sorted by name, as onnx.helper.make_node does."""
    out = b"".join(_str(1, i) for i in inputs) + b"".join(_str(2, o) for o in outputs)
    out += _str(3, name) + _str(4, op_type)
    return out + b"".join(_bytes(5, _attribute(k, v)) for k, v in sorted(attrs.items()))


def value_info(name, elem_type, shape):
    """ValueInfoProto of a tensor with a fixed shape."""
    dims = b"".join(_bytes(1, _int(1, d)) for d in shape)
    tensor_type = _int(1, elem_type) + _bytes(2, dims)
    return _str(1, name) + _bytes(2, _bytes(1, tensor_type))


def model(nodes, graph_name, inputs, outputs, initializers, opset, producer, ir_version):
    """ModelProto bytes of one graph in the default domain."""
    graph = b"".join(_bytes(1, n) for n in nodes) + _str(2, graph_name)
    graph += b"".join(_bytes(5, t) for t in initializers)
    graph += b"".join(_bytes(11, v) for v in inputs) + b"".join(_bytes(12, v) for v in outputs)
    opset_id = _str(1, "") + _int(2, opset)
    return _int(1, ir_version) + _str(2, producer) + _bytes(7, graph) + _bytes(8, opset_id)
