"""An ONNX graph written the same way every time: nodes in a canonical order, names by position.

tf2onnx's optimizers walk some of their collections in an order that changes from
process to process, so the same model can convert to differently ordered (and named)
nodes: the same function, other bytes, and a dvc.lock that changes on every re-run.
Here each tensor is identified by what computes it (its op, attributes and inputs,
recursively; an initializer by its contents), duplicate computations are merged, the
nodes are sorted topologically with ties broken by that identity, and every node,
intermediate tensor and initializer is renamed by position. Graph inputs and outputs
keep their names; their unknown sizes are called `batch` (the first) and `dimN`.
"""

from __future__ import annotations

import hashlib
import heapq

import onnx


def _digest(*parts: bytes | str) -> str:
    hasher = hashlib.sha256()
    for part in parts:
        hasher.update(part if isinstance(part, bytes) else part.encode())
        hasher.update(b"\0")
    return hasher.hexdigest()


def canonical(model: onnx.ModelProto) -> onnx.ModelProto:
    """`model` with its main graph canonicalized (a graph with subgraphs is left as it is)."""
    graph = model.graph
    if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
           for node in graph.node for a in node.attribute):  # fmt: skip
        return model
    identity = {i.name: _digest("input", i.name) for i in graph.input}
    identity[""] = ""
    for tensor in graph.initializer:
        nameless = onnx.TensorProto()
        nameless.CopyFrom(tensor)
        nameless.ClearField("name")
        identity[tensor.name] = _digest("const", nameless.SerializeToString(deterministic=True))
    pending = list(graph.node)
    ordered, seen, alias = [], {}, {}
    producers = {out: node for node in pending for out in node.output}
    outputs = {o.name for o in graph.output}
    while pending:  # identities, inputs before the nodes that read them
        progress = []
        for node in pending:
            if all(alias.get(name, name) in identity or name not in producers
                   for name in node.input):  # fmt: skip
                attributes = sorted(a.SerializeToString(deterministic=True) for a in node.attribute)
                key = _digest(node.op_type, node.domain, *attributes,
                              *(identity.get(alias.get(n, n), n) for n in node.input))  # fmt: skip
                if key in seen and set(node.output) & outputs:
                    key = _digest(key, *node.output)  # a graph output keeps its own node
                if key in seen:  # the same computation twice: read the first one's outputs
                    for mine, theirs in zip(node.output, seen[key].output, strict=True):
                        alias[mine] = theirs
                else:
                    seen[key] = node
                    for index, out in enumerate(node.output):
                        identity[out] = _digest(key, str(index))
                progress.append(node)
        if not progress:
            return model  # a cycle or a dangling input: not a graph to rewrite
        done = {id(node) for node in progress}
        pending = [node for node in pending if id(node) not in done]
    kept = list(seen.values())
    readers: dict[str, list] = {}
    for node in kept:
        for name in node.input:
            readers.setdefault(alias.get(name, name), []).append(node)
    waiting = {
        id(node): sum(alias.get(n, n) in producers for n in node.input if n) for node in kept
    }
    ready = [(identity[node.output[0]], id(node), node) for node in kept if not waiting[id(node)]]
    heapq.heapify(ready)
    while ready:
        _, _, node = heapq.heappop(ready)
        ordered.append(node)
        for out in node.output:
            for reader in readers.get(out, []):
                waiting[id(reader)] -= 1
                if not waiting[id(reader)]:
                    heapq.heappush(ready, (identity[reader.output[0]], id(reader), reader))
    renamed = {name: name for name in [i.name for i in graph.input] + list(outputs) + [""]}
    used_constants = []
    for node in ordered:
        for name in node.input:
            name = alias.get(name, name)
            if name not in renamed and name not in producers:
                renamed[name] = f"c{len(used_constants)}"
                used_constants.append(name)
    for position, node in enumerate(ordered):
        node.name = f"n{position}"
        for index, out in enumerate(node.output):
            renamed.setdefault(out, f"t{position}_{index}")
    for node in ordered:
        inputs = [renamed[alias.get(n, n)] for n in node.input]
        del node.input[:]
        node.input.extend(inputs)
        outs = [renamed[o] for o in node.output]
        del node.output[:]
        node.output.extend(outs)
    constants = {t.name: t for t in graph.initializer}
    kept_constants = []
    for name in used_constants:
        tensor = constants[name]
        tensor.name = renamed[name]
        kept_constants.append(tensor)
    del graph.node[:]
    graph.node.extend(ordered)
    del graph.initializer[:]
    graph.initializer.extend(kept_constants)
    del graph.value_info[:]
    for value in [*graph.input, *graph.output]:  # tf2onnx numbers unknown sizes per process
        for index, dim in enumerate(value.type.tensor_type.shape.dim):
            if dim.HasField("dim_param"):
                dim.dim_param = "batch" if index == 0 else f"dim{index}"
    return model
