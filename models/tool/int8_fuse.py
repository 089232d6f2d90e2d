"""Graph rewrites after onnxruntime's quantizer, so the backbone stays int8 end to end in tract:

- DequantizeLinear -> depthwise Conv (float) [-> Relu] -> QuantizeLinear becomes one QLinearConv
  with group = channels and per-channel symmetric int8 weights (veil's tract build runs it with
  its own int8 depthwise kernel; onnxruntime runs it as is). A Relu is dropped only when the
  output zero point is the int8 minimum, where saturation does the Relu.
- DequantizeLinear(a), DequantizeLinear(b) -> Add -> QuantizeLinear becomes com.microsoft
  QLinearAdd (an integer add with requantization).
"""
import numpy as np
import onnx
from onnx import helper, numpy_helper


def _maps(g):
    producers = {o: n for n in g.node for o in n.output}
    consumers = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    for o in g.output:
        consumers.setdefault(o.name, []).append(None)
    return producers, consumers


def _only_consumer(consumers, name):
    c = consumers.get(name, [])
    return c[0] if len(c) == 1 else None


def _fuse_depthwise(model):
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    arr = lambda name: numpy_helper.to_array(inits[name])
    producers, consumers = _maps(g)
    remove, add_nodes, add_inits = set(), [], []
    stats = {"depthwise": 0, "add": 0}

    for node in list(g.node):
        if node.op_type == "Conv":
            group = next((a.i for a in node.attribute if a.name == "group"), 1)
            w = inits.get(node.input[1])
            if w is None or group == 1 or group != w.dims[0]:
                continue
            dq = producers.get(node.input[0])
            if dq is None or dq.op_type != "DequantizeLinear":
                continue
            tail = _only_consumer(consumers, node.output[0])
            relu = None
            if tail is not None and tail.op_type == "Relu":
                relu, tail = tail, _only_consumer(consumers, tail.output[0])
            if tail is None or tail.op_type != "QuantizeLinear":
                continue
            q = tail
            x_scale = float(arr(dq.input[1]))
            y_zp = int(arr(q.input[2]))
            if relu is not None and y_zp != -128:
                continue
            wf = numpy_helper.to_array(w).astype(np.float32)
            w_scale = np.maximum(np.abs(wf).reshape(wf.shape[0], -1).max(axis=1), 1e-12) / 127.0
            wq = np.clip(np.round(wf / w_scale[:, None, None, None]), -127, 127).astype(np.int8)
            bias = arr(node.input[2]).astype(np.float32) if len(node.input) > 2 else np.zeros(wf.shape[0], np.float32)
            bq = np.round(bias / (x_scale * w_scale)).astype(np.int32)
            p = node.name
            add_inits += [
                numpy_helper.from_array(wq, p + "_w_q"),
                numpy_helper.from_array(w_scale.astype(np.float32), p + "_w_scale"),
                numpy_helper.from_array(np.zeros(wf.shape[0], np.int8), p + "_w_zp"),
                numpy_helper.from_array(bq, p + "_b_q"),
            ]
            fused = helper.make_node(
                "QLinearConv",
                [dq.input[0], dq.input[1], dq.input[2], p + "_w_q", p + "_w_scale", p + "_w_zp",
                 q.input[1], q.input[2], p + "_b_q"],
                [q.output[0]], name=p + "_quant")
            fused.attribute.extend([a for a in node.attribute])
            add_nodes.append((node, fused))
            remove.update({id(node), id(q)} | ({id(relu)} if relu is not None else set()))
            stats["depthwise"] += 1
    replacement = {id(old): new for old, new in add_nodes}
    new_nodes = []
    for n in g.node:
        if id(n) in replacement:
            new_nodes.append(replacement[id(n)])
        elif id(n) not in remove:
            new_nodes.append(n)
    del g.node[:]
    g.node.extend(new_nodes)
    g.initializer.extend(add_inits)
    return model, stats


def _fuse_one_add(model):
    """Fuse one Add whose inputs are both dequantized and whose output is quantized by at least one
    consumer; other consumers get a DequantizeLinear of the new int8 output. True if it fused one."""
    g = model.graph
    producers, consumers = _maps(g)
    for node in g.node:
        if node.op_type != "Add":
            continue
        ins = [producers.get(i) for i in node.input]
        if any(n is None or n.op_type != "DequantizeLinear" for n in ins):
            continue
        outs = consumers.get(node.output[0], [])
        qs = [c for c in outs if c is not None and c.op_type == "QuantizeLinear"]
        if not qs:
            continue
        q = qs[0]
        a, b = ins
        fused = helper.make_node(
            "QLinearAdd",
            [a.input[0], a.input[1], a.input[2], b.input[0], b.input[1], b.input[2], q.input[1], q.input[2]],
            [q.output[0]], name=node.name + "_quant", domain="com.microsoft")
        extra = []
        if len(outs) > 1:
            extra.append(helper.make_node("DequantizeLinear", [q.output[0], q.input[1], q.input[2]],
                                          [node.output[0]], name=node.name + "_dq"))
        # Other QuantizeLinear consumers with the same params read the fused output directly.
        nodes = []
        for n in g.node:
            if n is node:
                nodes.append(fused)
                nodes.extend(extra)
            elif n is q:
                continue
            else:
                nodes.append(n)
        del g.node[:]
        g.node.extend(nodes)
        return True
    return False


def _prune(model):
    g = model.graph
    changed = True
    while changed:
        used = {i for n in g.node for i in n.input} | {o.name for o in g.output}
        keep = [n for n in g.node if any(o in used for o in n.output)]
        changed = len(keep) != len(g.node)
        del g.node[:]
        g.node.extend(keep)
    used = {i for n in g.node for i in n.input}
    keep = [i for i in g.initializer if i.name in used]
    del g.initializer[:]
    g.initializer.extend(keep)


def fuse(model):
    model, stats = _fuse_depthwise(model)
    while _fuse_one_add(model):
        stats["add"] += 1
    _prune(model)
    if not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return model, stats
