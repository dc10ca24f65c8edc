"""The dataflow graph: folded nodes joined by streams, saved as ONNX with FINN's attribute names.

Nodes FINN also has are written in FINN's domain and op types; hwsim's in ``hwsim.dataflow.nodes``.
The weights stay in the integer graph the dataflow graph was mapped from (its path is in the
metadata), so a dataflow file is small and carries exactly the state the cost models read.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import onnx
from onnx import helper

from hwsim.dataflow.nodes import DataflowNode, make_node
from hwsim.dataflow.nodes.base import bits

META_KEY = "hwsim.dataflow"


class GraphError(ValueError):
    """A dataflow graph that is not a well-formed pipeline."""


class DataflowGraph:
    def __init__(self, source: str = "", steps: int = 50):
        self.nodes: list[DataflowNode] = []
        self.source = source
        self.steps = steps  # sampler steps per generated image (rows of the timestep tables)
        self.views: dict[str, str] = {}  # a stream read with another shape -> the stream itself
        self.streams: dict[str, tuple[list[int], int, str]] = {}  # stream -> (vectors, channels, datatype)
        # stream -> (the integer tensor it carries, the axis order it streams it in)
        self.carries: dict[str, tuple[str, tuple[int, ...]]] = {}

    # --- building --------------------------------------------------------------------------------
    def add(self, node: DataflowNode) -> None:
        if any(n.name == node.name for n in self.nodes):
            raise GraphError(f"two dataflow nodes named {node.name!r}")
        self.nodes.append(node)

    def add_view(self, view: str, src: str, order, orders: dict) -> str:
        self.views[view] = self.stream(src)
        orders[view] = order
        return view

    def stream(self, name: str) -> str:
        return self.views.get(name, name)

    def node(self, name: str) -> DataflowNode:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def producers(self) -> dict[str, DataflowNode]:
        return {out: n for n in self.nodes for out in n.outputs}

    def consumers(self) -> dict[str, list[DataflowNode]]:
        readers: dict[str, list[DataflowNode]] = {}
        for n in self.nodes:
            for i in n.inputs:
                readers.setdefault(self.stream(i), []).append(n)
        return readers

    def insert_forks(self) -> None:
        """A stream read by several nodes gets a DuplicateStreams node (FINN's InsertDuplicateStreams)."""
        for stream, readers in list(self.consumers().items()):
            if len(readers) < 2:
                continue
            if stream not in self.streams:
                raise GraphError(f"stream {stream!r} forks to {len(readers)} readers but its shape is unknown")
            vecs, ch, dtype = self.streams[stream]
            name = f"fork_{stream}"
            outs = [f"{name}:{i}" for i in range(len(readers))]
            fork = make_node("DuplicateStreams", name, {"NumChannels": ch, "numInputVectors": vecs, "PE": 1,
                                                        "NumOutputStreams": len(readers), "inputDataType": dtype},
                             inputs=[stream], outputs=outs, source="fork")
            for reader, out in zip(readers, outs):
                self.streams[out] = self.streams[stream]
                if stream in self.carries:
                    self.carries[out] = self.carries[stream]
                reader.inputs = [out if self.stream(i) == stream else i for i in reader.inputs]
            self.nodes.insert(self.nodes.index(self.producers()[stream]) + 1, fork)

    def insert_dwcs(self, names: set[str] | None = None) -> list[str]:
        """A StreamingDataWidthConverter on every edge whose producer writes other lanes than its
        consumer reads (FINN's InsertDWC), after folding; only between the nodes ``names`` if given.
        Returns the names of those inserted."""
        producers, added = self.producers(), []
        for node in list(self.nodes):
            for k, i in enumerate(node.inputs):
                s = self.stream(i)
                src = producers.get(s)
                if src is None or src.out_lanes() == node.in_lanes(k) \
                        or (names is not None and not {src.name, node.name} <= names):
                    continue
                vecs, ch, dtype = self.streams[s]
                b = bits(dtype)
                name = f"dwc_{s}_{node.name}"
                dwc = make_node("StreamingDataWidthConverter", name,
                                {"inWidth": src.out_lanes() * b, "outWidth": node.in_lanes(k) * b, "dataType": dtype,
                                 "numElements": math.prod(vecs) * ch}, inputs=[s], outputs=[name], source="dwc")
                self.streams[name] = self.streams[s]
                if s in self.carries:
                    self.carries[name] = self.carries[s]
                node.inputs[k] = name
                self.nodes.insert(self.nodes.index(node), dwc)
                added.append(name)
        return added

    def check(self) -> None:
        """Every read stream is produced earlier (topological order), every output is read."""
        produced: set[str] = set()
        read = {self.stream(i) for n in self.nodes for i in n.inputs}
        for n in self.nodes:
            for i in n.inputs:
                if self.stream(i) not in produced:
                    raise GraphError(f"node {n.name!r} reads {i!r} before any node produces it")
            produced.update(n.outputs)
        unread = produced - read
        if unread:
            raise GraphError(f"streams produced but never read: {sorted(unread)[:5]}")

    # --- totals ----------------------------------------------------------------------------------
    def macs(self) -> int:
        return sum(n.macs() for n in self.nodes)

    def bitops(self) -> int:
        return sum(n.bitops() for n in self.nodes)

    # --- files -----------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        nodes = [helper.make_node(n.op_type, [self.stream(i) for i in n.inputs], n.outputs, name=n.name,
                                  domain=n.domain, **{k: v for k, v in n.attrs.items()})
                 for n in self.nodes]
        for onnx_node, n in zip(nodes, self.nodes):
            onnx_node.doc_string = n.source
        graph = helper.make_graph(nodes, "dataflow", [], [])
        model = helper.make_model(graph, producer_name="hwsim")
        meta = {"source": self.source, "steps": self.steps, "streams": self.streams, "carries": self.carries}
        helper.set_model_props(model, {META_KEY: json.dumps(meta)})
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        onnx.save(model, str(path))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "DataflowGraph":
        path = Path(path)
        try:
            model = onnx.load(str(path))
        except Exception as err:
            raise GraphError(f"{path}: not a readable ONNX file ({type(err).__name__})") from None
        props = {p.key: p.value for p in model.metadata_props}
        if META_KEY not in props:
            raise GraphError(f"{path}: not a dataflow graph written by `hwsim map` (no {META_KEY} metadata)")
        meta = json.loads(props[META_KEY])
        graph = cls(meta["source"], meta["steps"])
        graph.streams = {k: tuple(v) for k, v in meta["streams"].items()}
        graph.carries = {k: (t, tuple(o)) for k, (t, o) in meta.get("carries", {}).items()}
        for n in model.graph.node:
            attrs = {a.name: _value(helper.get_attribute_value(a)) for a in n.attribute}
            graph.add(make_node(n.op_type, n.name, attrs, inputs=list(n.input), outputs=list(n.output),
                                source=n.doc_string))
        return graph


def _value(v):
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, list):
        return [_value(x) for x in v]
    return v
