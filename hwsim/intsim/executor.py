"""Run an integer graph: every node in order, every result checked against its declared datatype.

No torch and no onnxruntime: the graph is read with onnx, the ops are hwsim's own. A value
outside its tensor's declared datatype is an :class:`AccumulatorOverflow` naming the node
(or is saturated, if the simulator was built with ``saturate=True``). A graph with activation
scales per timestep group is one file per group (hwsim.export.intgraph); the simulator of the
first file runs each sample through its group's graph.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import json
import os
import sys
from pathlib import Path

import numba
import numpy as np
import onnx
from onnx import numpy_helper

from hwsim.export.ops import DOMAIN, EXPONENTS_KEY, GROUPS_KEY, OPS
from hwsim.intsim import kernels
from hwsim.intsim import fusion
from hwsim.intsim.ops.requant import check_range, round_shift_ref
from hwsim.quant.group_index import group_of


STORAGE = (np.int8, np.int16, np.int32)  # narrower storage than int64, for proven values


def _fast(op_type: str, inputs: list[np.ndarray], a: dict, bound: int | None, out_dtype=np.int64):
    """The Numba/BLAS kernel of an op, or None to use the numpy reference.

    ``bound`` caps |every partial sum| of a GEMM (None: unknown, so int64); see :func:`_gemm_bound`.
    ``out_dtype`` is the storage of the result (int32 only where the value is proven to fit); the
    kernels compute in int64 whatever their operands' storage.
    """
    if op_type == "IntConv":
        return kernels.int_conv(*inputs, a["strides"], a["pads"], bound, out_dtype)
    if op_type == "IntLinear":
        return kernels.int_linear(*inputs, bound, out_dtype)
    if op_type == "IntMatMul":
        return kernels.int_matmul(inputs[0], inputs[1], bound and bound * inputs[0].shape[-1], out_dtype)
    if op_type == "Requant":
        return kernels.requant(inputs[0], list(a["shifts"]), a["axis"], a["qmin"], a["qmax"], out_dtype)
    if op_type == "GroupNorm":
        return kernels.groupnorm(*inputs, a, out_dtype)
    if op_type == "Lut":  # raises on inputs outside the table's domain, as the reference
        return kernels.lut(inputs[0], inputs[1], a["in_min"], out_dtype)
    if op_type == "Modulate":
        return kernels.modulate(*inputs, a, out_dtype)
    if op_type == "Softmax":
        return kernels.softmax(inputs[0], inputs[1], a["fo"], out_dtype)
    if op_type == "IntAdd":
        return kernels.int_add(inputs[0], inputs[1], out_dtype)
    if op_type == "IntMul":
        return kernels.int_mul(inputs[0], inputs[1], out_dtype)
    if op_type == "Take":  # a view, not a copy (np.take copies)
        x = inputs[0]
        return x[(slice(None),) * (a["axis"] % x.ndim) + (a["index"],)]
    if op_type == "Upsample" and inputs[0].ndim == 4:
        return kernels.upsample(inputs[0], a["factor"])
    return None


def _peak(interval: tuple[int, int] | None) -> int | None:
    return None if interval is None else max(-interval[0], interval[1])


def _gemm_bound(op_type: str, inputs: list[str], consts: dict, ranges: dict) -> int | None:
    """A proven cap on |partial sums| of a GEMM node, from its input datatypes and constant weights.

    Taken from the inputs, not from the output's declared range, so that a deliberately narrowed
    output datatype is still reported as an overflow instead of a float GEMM rounding silently.
    """
    peaks = [_peak(ranges.get(name)) for name in inputs[:2]]
    if op_type == "IntMatMul":  # per product; the executor multiplies by the inner dimension
        return None if None in peaks else peaks[0] * peaks[1]
    if op_type in ("IntConv", "IntLinear") and peaks[0] is not None and inputs[1] in consts:
        w = consts[inputs[1]]
        return int(np.abs(w.reshape(w.shape[0], -1)).sum(axis=1).max()) * peaks[0]
    return None


_MOVES = {"Concat", "Upsample", "Reshape", "Transpose", "Take", "Slice"}  # outputs are input values


def _proven_interval(op_type: str, inputs: list[str], consts: dict, ranges: dict,
                     bound: int | None, attrs: dict | None = None) -> tuple[int, int] | None:
    """An interval that holds every output value of the node, proven from its inputs' declared
    datatypes and constant operands (None: nothing proven). Inputs are themselves checked or
    proven, so a node whose interval lies in its declared range needs no check at run time."""
    def interval(name):
        if name in consts:
            c = consts[name]
            return (int(c.min()), int(c.max())) if c.size else None
        return ranges.get(name)

    ivs = [interval(name) for name in inputs]
    if op_type in _MOVES and ivs and ivs[0] is not None and (op_type == "Concat" or len(ivs) == 1):
        if None in ivs:
            return None
        return min(iv[0] for iv in ivs), max(iv[1] for iv in ivs)
    if op_type in ("Lut", "TableLookup") and len(inputs) == 2 and inputs[1] in consts:
        return ivs[1]
    if op_type in ("IntAdd", "IntMul") and len(ivs) == 2 and None not in ivs:
        (a0, a1), (b0, b1) = ivs
        if op_type == "IntAdd":
            return a0 + b0, a1 + b1
        products = [a0 * b0, a0 * b1, a1 * b0, a1 * b1]
        return min(products), max(products)
    if op_type in ("IntConv", "IntLinear") and bound is not None and len(ivs) == 3 and ivs[2] is not None:
        return -bound + ivs[2][0], bound + ivs[2][1]
    if op_type == "Requant" and attrs is not None and len(ivs) == 1 and ivs[0] is not None:
        # round_shift is monotone: the interval's ends, shifted by the extreme shifts, then clamped
        ends = [int(round_shift_ref(np.array(v), int(s))) for v in ivs[0] for s in attrs["shifts"]]
        def clamp(v):
            return min(max(v, attrs["qmin"]), attrs["qmax"])
        return clamp(min(ends)), clamp(max(ends))
    return None


@functools.cache
def _blas_controller():
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _one_thread_pool():
    """BLAS limited to one thread while Numba's loops run on several. The two pools otherwise
    busy-wait for each other's cores after every call: on this 2-core host, unet-fashion W4A8 at
    batch 64 took 69 ms with two threads each against 35 ms on one thread; with BLAS on one
    thread and Numba on two, 22 ms (dit-fashion: 136 -> 27 ms). With one Numba thread BLAS keeps
    its threads (the DiT's linears gain from them)."""
    if numba.get_num_threads() > 1:
        return _blas_controller().limit(limits=1, user_api="blas")
    return contextlib.nullcontext()


def _keep_freed_memory() -> None:
    """Let glibc keep freed memory for reuse instead of returning it to the OS after every run.

    A forward pass allocates hundreds of MB of tensors; with glibc's defaults most are returned
    to the OS when freed (large blocks are mmapped, the heap top is trimmed), so every run
    page-faults them in again: on unet-fashion at batch 64, 22,000 minor faults and about a
    quarter of the run's time in the kernel. Fixed thresholds (mmap only above 32 MB, trim only
    above 1 GB of free heap) remove that; the cost is that the process keeps up to that much freed
    memory. Process-wide and once; ``HWSIM_MALLOC_DEFAULTS=1`` leaves glibc's defaults.
    """
    global _MALLOC_TUNED
    if _MALLOC_TUNED or os.environ.get("HWSIM_MALLOC_DEFAULTS") == "1" or not sys.platform.startswith("linux"):
        return
    _MALLOC_TUNED = True
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 32 << 20)  # M_MMAP_THRESHOLD (glibc's maximum)
        libc.mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):  # not glibc
        pass


_MALLOC_TUNED = False


class GraphError(RuntimeError):
    """The file is not a valid integer graph for this simulator."""


class Simulator:
    """``Simulator(path).run(x, t)`` -> eps (float64); ``.run_integers(x, t)`` -> every integer tensor."""

    def __init__(self, path: str | Path, saturate: bool = False, reference: bool = False):
        """``reference=True`` runs every op's numpy reference instead of the fast kernels."""
        self.path = Path(path)
        self.reference = reference
        _keep_freed_memory()
        try:
            model = onnx.load(str(self.path))
        except Exception as err:  # protobuf raises several types on corrupt input
            raise GraphError(f"{self.path}: not a readable ONNX file ({type(err).__name__})") from None
        graph = model.graph
        self.saturate = saturate
        self.inputs = [i.name for i in graph.input]
        self.input_shapes = {i.name: [d.dim_value or None for d in i.type.tensor_type.shape.dim] for i in graph.input}
        self.consts = {}
        for init in graph.initializer:
            array = numpy_helper.to_array(init)
            if not np.issubdtype(array.dtype, np.integer):
                raise GraphError(f"{self.path}: tensor {init.name!r} is {array.dtype}; the integer graph carries integers only")
            self.consts[init.name] = array.astype(np.int64)
        float_ok = {("QuantInput", i.name) for i in graph.input if i.type.tensor_type.elem_type in (1, 11)}
        dequantized = {n.output[0] for n in graph.node if n.op_type == "Dequant"}
        self.nodes = []
        for node in graph.node:
            if node.domain != DOMAIN or node.op_type not in OPS:
                raise GraphError(f"{self.path}: node {node.name!r} has unsupported op {node.domain or 'onnx'}:{node.op_type}; "
                                 f"supported: {', '.join(sorted(OPS))}")
            for name in node.input:
                is_float_input = name in self.input_shapes and (node.op_type, name) not in float_ok and name != "t"
                if is_float_input or name in dequantized:
                    raise GraphError(f"{self.path}: node {node.name!r} reads float tensor {name!r}; only QuantInput may")
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            op = OPS[node.op_type]
            full = {k: attrs.get(k, spec[2]) for k, spec in op.ATTRS.items()}
            full = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in full.items()}
            self.nodes.append((node.name, op, list(node.input), node.output[0], full))
        self.ranges = {}
        for ann in graph.quantization_annotation:
            for kv in ann.quant_parameter_tensor_names:
                if kv.key == "finn_datatype" and kv.value.startswith("INT"):
                    bits = int(kv.value[3:])
                    self.ranges[ann.tensor_name] = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
        self.gemm_bounds = {name: _gemm_bound(op.__name__, ins, self.consts, self.ranges) for name, op, ins, _, _ in self.nodes}
        self._proven_for: dict | None = None
        props = {p.key: p.value for p in model.metadata_props}
        self.exponents = json.loads(props.get(EXPONENTS_KEY, "{}"))
        self.members = [self]  # one simulator per timestep group (just this one for an ungrouped graph)
        if GROUPS_KEY in props:
            grouping = json.loads(props[GROUPS_KEY])
            self.num_train_timesteps = int(grouping["num_train_timesteps"])
            for name in grouping["files"][1:]:
                member = Simulator(self.path.parent / name, saturate, reference)
                if [n[:4] for n in member.nodes] != [n[:4] for n in self.nodes]:
                    raise GraphError(f"{member.path}: its nodes differ from {self.path}'s; the timestep groups must share a datapath")
                self.members.append(member)

    @property
    def self_clamping(self) -> set[str]:
        """Nodes that clamp to [qmin, qmax] inside their declared range: they cannot overflow."""
        return {name for name, _, _, out, a in self.nodes
                if "qmin" in a and out in self.ranges and self.ranges[out][0] <= a["qmin"] and a["qmax"] <= self.ranges[out][1]}

    def _proven(self) -> set[str]:
        """Nodes whose values are proven inside their declared range from their inputs' declared
        ranges (see :func:`_proven_interval`): no check needed. Recomputed whenever ``ranges`` changes."""
        if self._proven_for != self.ranges:
            proven = set()
            for name, op, ins, out, attrs in self.nodes:
                bound = _gemm_bound(op.__name__, ins, self.consts, self.ranges)
                iv = _proven_interval(op.__name__, ins, self.consts, self.ranges, bound, attrs)
                if iv is not None and out in self.ranges and self.ranges[out][0] <= iv[0] and iv[1] <= self.ranges[out][1]:
                    proven.add(name)
            self._proven_set, self._proven_for = proven, dict(self.ranges)
        return self._proven_set

    def _unchecked(self) -> set[str]:
        """Nodes whose range check is skipped: self-clamping or proven, for the current ``ranges``."""
        if getattr(self, "_unchecked_for", None) != self.ranges:
            self._unchecked_set, self._unchecked_for = self.self_clamping | self._proven(), dict(self.ranges)
        return self._unchecked_set

    def _check_input(self, name: str, value: np.ndarray) -> None:
        expect = self.input_shapes[name]
        if value.ndim != len(expect) or any(e is not None and e != v for e, v in zip(expect, value.shape)):
            raise GraphError(f"input {name!r}: shape {tuple(value.shape)} does not match the graph's {expect} (None = any)")

    def enable_stats(self) -> None:
        """Accumulate per-node statistics over every following run (see :meth:`stats`)."""
        for member in self.members:
            member._stats = {}

    def _record(self, node: str, output: str, value: np.ndarray) -> None:
        s = self._stats.setdefault(node, {"tensor": output, "values": 0, "zeros": 0, "min": None, "max": None,
                                          "toggle_bits": 0, "transitions": 0})
        s["values"] += value.size
        s["zeros"] += int(np.count_nonzero(value == 0))
        lo, hi = int(value.min()), int(value.max())
        s["min"] = lo if s["min"] is None else min(s["min"], lo)
        s["max"] = hi if s["max"] is None else max(s["max"], hi)
        # bit toggles between successive values of the stream (channels last, as hardware streams
        # them), counted in the tensor's declared two's-complement width
        stream = np.moveaxis(value, 1, -1).reshape(-1) if value.ndim > 2 else value.reshape(-1)
        if stream.size > 1:
            declared = self.ranges.get(output)
            bits = (declared[1] + 1).bit_length() if declared else 64  # INTb holds [-2^(b-1), 2^(b-1)-1]
            flips = np.bitwise_xor(stream[1:], stream[:-1]).view(np.uint64)
            if bits < 64:
                flips = flips & np.uint64((1 << bits) - 1)
            s["toggle_bits"] += int(np.unpackbits(flips.view(np.uint8)).sum())
            s["transitions"] += stream.size - 1

    def _merged_stats(self) -> dict[str, dict]:
        """The members' raw statistics summed node by node (the groups share node names)."""
        merged: dict[str, dict] = {}
        for member in self.members:
            for node, s in getattr(member, "_stats", {}).items():
                m = merged.setdefault(node, {**s, "values": 0, "zeros": 0, "toggle_bits": 0, "transitions": 0})
                for key in ("values", "zeros", "toggle_bits", "transitions"):
                    m[key] += s[key]
                m["min"] = min(m["min"], s["min"])
                m["max"] = max(m["max"], s["max"])
        return merged

    def stats(self) -> dict[str, dict]:
        """Per node: zero fraction, observed range against the declared one, mean bit toggles per value
        (over every timestep group of a grouped graph)."""
        out = {}
        for node, s in self._merged_stats().items():
            declared = self.ranges.get(s["tensor"])
            out[node] = {
                "tensor": s["tensor"], "values": s["values"], "zero_fraction": s["zeros"] / max(1, s["values"]),
                "observed_range": [s["min"], s["max"]], "declared_range": list(declared) if declared else None,
                "declared_bits": (declared[1] + 1).bit_length() if declared else None,
                "toggles_per_value": s["toggle_bits"] / max(1, s["transitions"]),
            }
        return out

    @property
    def groups(self) -> int:
        return len(self.members)

    def _groups_of(self, t: np.ndarray) -> np.ndarray:
        return group_of(t, self.groups, self.num_train_timesteps)

    def run_integers(self, x: np.ndarray, t: np.ndarray) -> dict[str, np.ndarray]:
        """Every integer tensor of one run; with timestep groups, all samples must share one group."""
        if self.groups == 1:
            return self._all_integers(x, t)
        g = np.unique(self._groups_of(np.asarray(t, dtype=np.int64).reshape(-1)))
        if len(g) != 1:
            raise GraphError(f"{self.path}: run_integers needs samples of one timestep group (tensors differ in scale "
                             f"between groups); t spans groups {g.tolist()}")
        return self.members[int(g[0])]._all_integers(x, t)

    def _steps(self, fused: bool) -> list[fusion.Step]:
        """Node by node, or the fused plan (:mod:`hwsim.intsim.fusion`); recomputed when ``ranges`` changes."""
        unchecked = self._unchecked()
        if not fused or self.reference or self.saturate:
            return [fusion.Step("node", (i,)) for i in range(len(self.nodes))]
        if getattr(self, "_plan_for", None) is not unchecked:  # a new set whenever ranges change
            self._plan, self._plan_for = fusion.plan(self.nodes, self.consts, unchecked, {"eps"}), unchecked
        return self._plan

    def _storage(self, name: str, output: str, unchecked: set[str]):
        """The narrowest of int8/int16/int32 that holds the node's declared range, where its value
        is proven inside that range (self-clamping or proven); int64 otherwise."""
        lo, hi = self.ranges.get(output, (None, None))
        if name in unchecked and hi is not None:
            for dtype in STORAGE:
                info = np.iinfo(dtype)
                if info.min <= lo and hi <= info.max:
                    return dtype
        return np.int64

    def _finish(self, index: int, value: np.ndarray, env: dict, unchecked: set[str]) -> None:
        """Check node ``index``'s value against its declared range (unless proven), record it, store it."""
        name, _, _, output, _ = self.nodes[index]
        lo, hi = self.ranges.get(output, (None, None))
        if hi is not None and name not in unchecked:
            value = check_range(value, lo, hi, name, self.saturate)
        if hasattr(self, "_stats") and np.issubdtype(value.dtype, np.integer) and value.size:
            self._record(name, output, value.astype(np.int64, copy=False))
        env[output] = value

    def _node(self, index: int, env: dict, unchecked: set[str]) -> None:
        name, op, inputs, output, attrs = self.nodes[index]
        args = [env[i] for i in inputs]
        value = None
        if not self.reference:
            value = _fast(op.__name__, args, attrs, self.gemm_bounds[name], self._storage(name, output, unchecked))
        if value is None:
            if op.__name__ not in _MOVES:  # the references compute in the operands' type: int64 for them
                args = [a.astype(np.int64) if a.dtype in STORAGE else a for a in args]
            value = op.compute(args, attrs)
        self._finish(index, value, env, unchecked)

    def _fused(self, step: fusion.Step, env: dict, unchecked: set[str]) -> bool:
        """Run a fused step: its last node's value into ``env`` (checked as that node's), or False
        if its operands do not fit the fused kernel (the caller then runs its nodes one by one)."""
        nodes = [self.nodes[i] for i in step.nodes]
        first, last = nodes[0], nodes[-1]
        dtype = self._storage(last[0], last[3], unchecked)
        x = env[first[2][0]]
        kind, a = step.kind, first[4]

        def lut_of(node):
            return (self.consts[node[2][1]], node[4]["in_min"]) if node[1].__name__ == "Lut" else None

        if kind == "gn":
            rq = None
            if first[1].__name__ == "Requant":
                if x.ndim < 2 or (rq := kernels.rq_for(a, x.shape, 1)) is None:
                    return False
                gn = nodes[1]
            else:
                gn = first
            g, b = (env[name] for name in gn[2][1:])
            value = kernels.groupnorm(x, g, b, gn[4], dtype, rq, lut_of(last))
        elif kind == "mod":
            if x.ndim != 3 or (rq := kernels.rq_for(a, x.shape, 2)) is None:
                return False
            scale, shift = (env[name] for name in last[2][1:])
            value = kernels.modulate(x, scale, shift, last[4], dtype, rq)
        elif kind == "softmax":
            value = kernels.softmax(x, env[last[2][1]], last[4]["fo"], dtype, kernels.rq_for(a, x.shape, 0))
        elif kind == "rqlut":
            value = kernels.requant(x, list(a["shifts"]), a["axis"], a["qmin"], a["qmax"], dtype, lut_of(last))
        elif kind == "linear":
            w, b = env[first[2][1]], env[first[2][2]]
            rq = kernels.rq_for(nodes[1][4], (*x.shape[:-1], w.shape[0]), -1)
            if rq is None:
                return False
            value = kernels.int_linear(x, w, b, self.gemm_bounds[first[0]], dtype, rq, lut_of(last))
        elif kind == "conv":
            rq_in = None
            if first[1].__name__ == "Requant":
                if x.ndim != 4 or (rq_in := kernels.rq_for(a, x.shape, 1)) is None:
                    return False
                nodes = nodes[1:]
            conv = nodes[0]
            w, b = env[conv[2][1]], env[conv[2][2]]
            extra, rq = None, None
            if len(nodes) > 1 and nodes[1][1].__name__ == "IntAdd":
                add_inputs = nodes[1][2]
                extra = env[add_inputs[1] if add_inputs[0] == conv[3] else add_inputs[0]]
                if extra.ndim != 4:
                    return False
            if len(nodes) > 1 and last[1].__name__ == "Requant":
                if (rq := kernels.rq_for(last[4], (x.shape[0], w.shape[0], 1, 1), 1)) is None:
                    return False
            c = conv[4]
            try:
                value = kernels.int_conv(x, w, b, c["strides"], c["pads"], self.gemm_bounds[conv[0]], dtype, extra, rq,
                                         rq_in)
            except ValueError:  # extra does not broadcast to the output
                return False
        elif kind == "uprq":
            r = last[4]
            if x.ndim != 4 or (len(r["shifts"]) > 1 and r["axis"] % 4 != 1):
                return False
            small = kernels.requant(x, list(r["shifts"]), r["axis"] % 4, r["qmin"], r["qmax"], dtype)
            value = kernels.upsample(small, a["factor"])
        else:
            raise AssertionError(kind)
        self._finish(step.nodes[-1], value, env, unchecked)
        return True

    def _run_integers(self, x: np.ndarray, t: np.ndarray, fused: bool = False, free: bool = False) -> dict[str, np.ndarray]:
        """Every node's output (int32 or int64 storage); with ``fused``, the tensors inside fused
        chains are missing; with ``free``, each tensor is dropped after its last reader (only
        ``eps`` is left)."""
        x, t = np.asarray(x), np.asarray(t, dtype=np.int64)
        if not np.issubdtype(x.dtype, np.floating):
            raise GraphError(f"input 'x' must be a float array, got {x.dtype}")
        self._check_input("x", x)
        self._check_input("t", t)
        env: dict[str, np.ndarray] = {"x": x.astype(np.float64), "t": t, **self.consts}
        unchecked = self._unchecked()
        steps = self._steps(fused and not hasattr(self, "_stats"))
        drops = self._last_reads(steps) if free else None
        with _one_thread_pool():
            for k, step in enumerate(steps):
                if step.kind == "node" or not self._fused(step, env, unchecked):
                    for index in step.nodes:
                        self._node(index, env, unchecked)
                if drops:
                    for name in drops[k]:
                        env.pop(name, None)
        return env

    def _last_reads(self, steps: list[fusion.Step]) -> list[list[str]]:
        """Per step, the tensors it reads last (not constants, not ``eps``): freed after it, so that
        a run reuses memory instead of holding every tensor to the end."""
        if getattr(self, "_last_reads_for", None) is not steps:
            last = {}
            for k, step in enumerate(steps):
                for index in step.nodes:
                    for name in self.nodes[index][2]:
                        last[name] = k
            drops: list[list[str]] = [[] for _ in steps]
            for name, k in last.items():
                if name not in self.consts and name != "eps":
                    drops[k].append(name)
            self._last_reads_list, self._last_reads_for = drops, steps
        return self._last_reads_list

    def _all_integers(self, x: np.ndarray, t: np.ndarray) -> dict[str, np.ndarray]:
        env = self._run_integers(x, t)
        return {k: (v.astype(np.int64) if v.dtype in STORAGE else v) for k, v in env.items() if k not in self.consts}

    def run(self, x: np.ndarray, t: np.ndarray) -> np.ndarray:
        """eps (float64) for every sample, each through its timestep group's graph."""
        t = np.asarray(t, dtype=np.int64)
        if self.groups == 1:
            return self._run_integers(x, t, fused=True, free=True)["eps"]
        g = self._groups_of(t.reshape(-1))
        if np.all(g == g[0]):
            return self.members[int(g[0])]._run_integers(x, t, fused=True, free=True)["eps"]
        out = None
        for k in np.unique(g):
            keep = g == k
            part = self.members[int(k)]._run_integers(np.asarray(x)[keep], t[keep], fused=True, free=True)["eps"]
            if out is None:
                out = np.empty((len(g), *part.shape[1:]), dtype=part.dtype)
            out[keep] = part
        return out
