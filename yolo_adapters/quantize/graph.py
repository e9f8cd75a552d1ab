"""What stays in float when a YOLO model is quantized, found from the graph structure, for any graph format.

The walk is written once against a tiny node interface (``Node``: a name, a kind, its producers); adapters
present OpenVINO's ``ov.Model`` (``OVGraph``) and an ONNX ``ModelProto`` (``OnnxGraph``) through it. Kinds use
OpenVINO's op names; the ONNX adapter maps its own (``Conv`` -> ``Convolution``, ``Shape`` -> ``ShapeOf``...).
Node names are never interpreted, only returned: they are what each quantizer's ignore list takes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Protocol

#: Learned layers: where the walk back from the outputs stops.
LEARNED = ("Convolution", "GroupConvolution", "MatMul", "ConvolutionBackpropData", "GroupConvolutionBackpropData")
#: Ops that only move data around: a constant-weight layer fed by a Softmax through these is a decode op (DFL).
LAYOUT = ("Reshape", "Transpose", "Squeeze", "Unsqueeze", "Convert", "Split", "VariadicSplit", "StridedSlice", "Slice")
_SOFTMAX = ("Softmax", "SoftMax")


class Node(Protocol):
    """One operation: ``name`` (what an ignore list takes), ``kind`` (OpenVINO op type), its producers."""

    name: str
    kind: str

    @property
    def inputs(self) -> Sequence[Node]: ...

    @property
    def out_channels(self) -> int | None:
        """A learned layer's number of output channels (its weights' first dimension), None where unknown."""


class Graph(Protocol):
    def results(self) -> Sequence[Node]:
        """The producers of the model outputs."""

    def nodes(self) -> Iterable[Node]:
        """Every operation (constants and inputs included where the format has them as nodes)."""


# -- OpenVINO -------------------------------------------------------------------------------------------------
class _OVNode:
    __slots__ = ("_graph", "_inputs", "_op", "kind", "name")

    def __init__(self, graph: OVGraph, op: Any) -> None:
        self._graph, self._op = graph, op
        self.name, self.kind = op.get_friendly_name(), op.get_type_name()
        self._inputs: list[_OVNode] | None = None

    @property
    def inputs(self) -> list[_OVNode]:
        if self._inputs is None:
            self._inputs = [self._graph.wrap(port.get_source_output().get_node()) for port in self._op.inputs()]
        return self._inputs

    @property
    def out_channels(self) -> int | None:
        if self._op.get_input_size() < 2:
            return None
        shape = self._op.get_input_partial_shape(1)
        return int(shape[0].get_length()) if shape.rank.is_static and shape[0].is_static else None


class OVGraph:
    """An ``openvino.Model`` through the ``Graph`` interface."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self._nodes: dict[str, _OVNode] = {}

    def wrap(self, op: Any) -> _OVNode:
        name = op.get_friendly_name()
        node = self._nodes.get(name)
        if node is None:
            node = self._nodes[name] = _OVNode(self, op)
        return node

    def results(self) -> list[_OVNode]:
        return [self.wrap(r.input(0).get_source_output().get_node()) for r in self.model.get_results()]

    def nodes(self) -> Iterator[_OVNode]:
        return (self.wrap(op) for op in self.model.get_ops())


# -- ONNX -------------------------------------------------------------------------------------------------------
#: ONNX op types under the OpenVINO name the walk uses (the others are the same in both, or irrelevant).
ONNX_KINDS = {
    "Conv": "Convolution",
    "ConvTranspose": "ConvolutionBackpropData",
    "Gemm": "MatMul",
    "Shape": "ShapeOf",
    "Cast": "Convert",
    "Sub": "Subtract",
    "Mul": "Multiply",
    "Div": "Divide",
}


class _OnnxNode:
    __slots__ = ("_graph", "_inputs", "_names", "kind", "name")

    def __init__(self, graph: OnnxGraph, name: str, kind: str, input_names: Sequence[str]) -> None:
        self._graph, self.name, self.kind, self._names = graph, name, kind, list(input_names)
        self._inputs: list[_OnnxNode] | None = None

    @property
    def inputs(self) -> list[_OnnxNode]:
        if self._inputs is None:
            self._inputs = [self._graph.producer(t) for t in self._names if t]  # "" = an omitted optional input
        return self._inputs

    @property
    def out_channels(self) -> int | None:
        dims = self._graph.initializer_dims(self._names[1]) if len(self._names) > 1 else None
        return int(dims[0]) if dims else None


class OnnxGraph:
    """An ONNX ``ModelProto`` through the ``Graph`` interface: initializers are Constant pseudo-nodes, graph
    inputs Parameter pseudo-nodes (their names are never returned in a scope). Unnamed nodes get a name
    (``name_nodes``) so that an ignore list can reach them."""

    def __init__(self, model: Any) -> None:
        name_nodes(model)
        graph = model.graph
        self.model = model
        self._ops = [_OnnxNode(self, n.name, _onnx_kind(n.op_type), n.input) for n in graph.node]
        self._by_tensor: dict[str, _OnnxNode] = {}
        for proto, node in zip(graph.node, self._ops):
            for out in proto.output:
                self._by_tensor[out] = node
        for init in graph.initializer:
            self._by_tensor.setdefault(init.name, _OnnxNode(self, f"<initializer {init.name}>", "Constant", ()))
        for value in graph.input:
            self._by_tensor.setdefault(value.name, _OnnxNode(self, f"<input {value.name}>", "Parameter", ()))
        self._outputs = [o.name for o in graph.output]
        self._dims = {init.name: list(init.dims) for init in graph.initializer}

    def initializer_dims(self, tensor: str) -> list[int] | None:
        """The shape of a weight initializer (through a Cast or DequantizeLinear of one), None if not a weight."""
        node = self._by_tensor.get(tensor)
        if tensor in self._dims:
            return self._dims[tensor]
        if node is not None and node._names and node.kind in ("Convert", "DequantizeLinear"):
            return self.initializer_dims(node._names[0])
        return None

    def producer(self, tensor: str) -> _OnnxNode:
        node = self._by_tensor.get(tensor)
        if node is None:  # a tensor from an outer scope: treat as an input
            node = self._by_tensor[tensor] = _OnnxNode(self, f"<input {tensor}>", "Parameter", ())
        return node

    def results(self) -> list[_OnnxNode]:
        return [self.producer(name) for name in self._outputs]

    def nodes(self) -> list[_OnnxNode]:
        return list(self._ops)


def _onnx_kind(op_type: str) -> str:
    return ONNX_KINDS.get(op_type, op_type)


def name_nodes(model: Any) -> int:
    """Give every unnamed node of an ONNX model a unique name (in place); returns how many were named."""
    taken = {n.name for n in model.graph.node if n.name}
    named = 0
    for i, node in enumerate(model.graph.node):
        if not node.name:
            name = f"{node.op_type}_{i}"
            while name in taken:
                name += "_"
            node.name = name
            taken.add(name)
            named += 1
    return named


def as_graph(model: Any) -> Graph:
    """``model`` through the ``Graph`` interface: an ``openvino.Model``, an ONNX ``ModelProto``, or a Graph."""
    if hasattr(model, "get_results") and hasattr(model, "get_ops"):
        return OVGraph(model)
    if hasattr(model, "graph") and hasattr(model.graph, "node"):
        return OnnxGraph(model)
    if hasattr(model, "results") and hasattr(model, "nodes"):
        return model
    raise TypeError(f"not a graph this walk reads: {type(model).__name__} (an openvino.Model or an onnx.ModelProto)")


# -- the walk -------------------------------------------------------------------------------------------------
def is_constant(node: Node, memo: dict[str, bool]) -> bool:
    """A Constant, or an op computed only from constants (decompressed FP16 weights: Constant -> Convert)."""
    name = node.name
    if name not in memo:
        if node.kind == "Constant":
            memo[name] = True
        elif node.kind in ("Parameter", "ShapeOf", "Result") or not node.inputs:
            memo[name] = False
        else:
            memo[name] = False  # cycles cannot happen in a DAG, but be safe while recursing
            memo[name] = all(is_constant(i, memo) for i in node.inputs)
    return memo[name]


def is_learned(node: Node, memo: dict[str, bool]) -> bool:
    """A trained layer (conv/matmul with constant weights) whose data input is not a Softmax (DFL's fixed conv)."""
    inputs = node.inputs
    if node.kind not in LEARNED or len(inputs) < 2:
        return False
    if not is_constant(inputs[1], memo):
        return False  # attention's activation x activation MatMul
    source = inputs[0]
    while source.kind in LAYOUT and source.inputs:
        source = source.inputs[0]
    return source.kind not in _SOFTMAX


def head_postprocessing(model: Any) -> list[str]:
    """Names of the ops after the last learned layers: the decode that must stay in float.

    Walks back from every output and stops at learned layers (and constants, inputs, ShapeOf): what it visits
    is the post-processing of every Ultralytics head (DFL, dist2bbox, stride Multiply, Sigmoid, keypoint and
    angle decode, classify Softmax, the concats feeding them). A learned layer's own bias Add is left to it.
    """
    graph = as_graph(model)
    memo: dict[str, bool] = {}
    seen: dict[str, Node] = {}
    stack = list(graph.results())
    while stack:
        node = stack.pop()
        if (
            node.name in seen
            or node.kind in ("Parameter", "Result")
            or is_constant(node, memo)
            or is_learned(node, memo)
        ):
            continue
        seen[node.name] = node
        if node.kind != "ShapeOf":  # a shape read does not make its producer post-processing
            stack.extend(node.inputs)
    names = []
    for name, node in seen.items():
        if node.kind == "Add" and any(is_learned(i, memo) for i in node.inputs):
            continue  # bias of a learned layer (fused with it)
        names.append(name)
    return sorted(names)


def float_scope(model: Any, keypoint_channels: int | None = None) -> dict[str, list[str]]:
    """Every op left in float, by reason (all found from the graph structure, never from node names):

    - ``decode``: the head's post-processing (``head_postprocessing``);
    - ``head_outputs``: the learned layers that feed the decode directly (the last 1x1 convs of the box, class,
      keypoint, mask-coefficient and angle branches: their outputs are coordinates, not features);
    - ``attention``: activation x activation MatMuls and their Softmax (C2PSA / area attention);
    - ``keypoint_branch``, only when ``keypoint_channels`` is given (a pose model's keypoints x 3): the learned
      layers of the branches whose head output has that many channels, up to the feature they share with the box
      and class branches (``branch_layers``).
    """
    graph = as_graph(model)
    memo: dict[str, bool] = {}
    decode = head_postprocessing(graph)
    wanted = set(decode)
    head_outputs: set[str] = set()
    attention: list[str] = []
    for node in graph.nodes():
        if node.name in wanted:
            for source in node.inputs:
                candidates = list(source.inputs) if source.kind == "Add" else [source]  # through a bias Add
                head_outputs.update(c.name for c in candidates if is_learned(c, memo))
        elif node.kind == "MatMul" and len(node.inputs) == 2 and not is_constant(node.inputs[1], memo):
            attention.append(node.name)
        elif node.kind in _SOFTMAX:
            attention.append(node.name)
    scope = {"decode": decode, "head_outputs": sorted(head_outputs), "attention": sorted(attention)}
    if keypoint_channels:
        outputs = [n for n in graph.nodes() if n.name in head_outputs and n.out_channels == keypoint_channels]
        scope["keypoint_branch"] = sorted(branch_layers(graph, outputs) - head_outputs)
    return scope


def branch_layers(model: Any, ends: Sequence[Node]) -> set[str]:
    """The learned layers of the branches ending at ``ends``: walking back from each end, an op joins its branch
    when every op that reads it is already in the branch, so the walk stops at the feature the branch shares with
    its siblings (in a YOLO head, the neck output read by the box, class and keypoint branches alike)."""
    graph = as_graph(model)
    consumers: dict[str, set[str]] = {}
    for node in graph.nodes():
        for source in node.inputs:
            consumers.setdefault(source.name, set()).add(node.name)
    memo: dict[str, bool] = {}
    learned: set[str] = set()
    for end in ends:
        branch = {end.name}
        frontier = list(end.inputs)
        while frontier:
            node = frontier.pop()
            if node.name in branch or node.kind in ("Parameter", "Result") or is_constant(node, memo):
                continue
            if consumers.get(node.name, set()) <= branch:
                branch.add(node.name)
                frontier.extend(node.inputs)  # a rejected input comes back when its last reader joins
        learned |= {n.name for n in graph.nodes() if n.name in branch and is_learned(n, memo)}
        learned.add(end.name)
    return learned


def count_kinds(model: Any, names: Iterable[str]) -> dict[str, int]:
    """How many of the named ops there are of each kind (the report's ``kept_in_float``)."""
    wanted = set(names)
    counts: dict[str, int] = {}
    for node in as_graph(model).nodes():
        if node.name in wanted:
            counts[node.kind] = counts.get(node.kind, 0) + 1
    return dict(sorted(counts.items()))
