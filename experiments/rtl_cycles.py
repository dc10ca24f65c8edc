"""Measured cycles of the RTL blocks against the cost model (issue 6): every block built so far, on
the configurations its model constants were read from (``held_out: false``) and on random ones
drawn afterwards (``held_out: true``), streamed twice back to back without back-pressure on Icarus.

    python experiments/rtl_cycles.py      # writes experiments/results/rtl/cycles.{json,md}

The model's formulas were fixed (commit in each row's provenance) before the held-out rows ran.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import tempfile
from pathlib import Path

from hwsim.provenance import provenance
from hwsim.rtlgen import benches, reorder
from hwsim.rtlgen.benches import DynamicMvauConfig, MvauConfig

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "experiments/results/rtl"

CALIBRATION = [  # the configurations the latency constants were read from
    ("MVAU", lambda d: benches.bench_mvau(MvauConfig(8, 4, 2, 4), d, backpressure=False)),
    ("MVAU", lambda d: benches.bench_mvau(MvauConfig(12, 6, 3, 1, WBITS=8), d, backpressure=False)),
    ("MVAU", lambda d: benches.bench_mvau(MvauConfig(16, 8, 8, 16, WBITS=2, ABITS=4, SIGNED_IN=False), d, backpressure=False)),
    ("MVAU", lambda d: benches.bench_mvau(MvauConfig(9, 4, 1, 3, ACTIVATION=False), d, backpressure=False)),
    ("MVAU", lambda d: benches.bench_mvau(MvauConfig(6, 3, 3, 2, WBITS=3, ABITS=5), d, backpressure=False)),
    ("MVAU N:M", lambda d: benches.bench_mvau(MvauConfig(16, 4, 2, 2, N=2, M=4), d, backpressure=False)),
    ("MVAU N:M", lambda d: benches.bench_mvau(MvauConfig(12, 6, 3, 3, N=1, M=4, NIV=2), d, backpressure=False)),
    ("MVAU N:M", lambda d: benches.bench_mvau(MvauConfig(16, 8, 8, 4, N=2, M=8, ACTIVATION=False), d, backpressure=False)),
    ("MVAU N:M", lambda d: benches.bench_mvau(MvauConfig(8, 4, 1, 1, N=2, M=4), d, backpressure=False)),
    ("Requant", lambda d: benches.bench_requant(8, 2, 5, d, backpressure=False)),
    ("LutActivation", lambda d: benches.bench_lut(8, 4, 5, d, backpressure=False)),
    ("ElementwiseAdd", lambda d: benches.bench_elementwise("add", 8, 2, 5, d, backpressure=False)),
    ("DuplicateStreams", lambda d: benches.bench_duplicate(4, 2, 6, d, backpressure=False)),
    ("FMPadding", lambda d: benches.bench_fmpad(3, 4, 4, 2, (1, 1, 1, 1), d, backpressure=False)),
    ("ConvolutionInputGenerator", lambda d: benches.bench_swg(6, 6, 2, 1, (3, 3), (1, 1), d, backpressure=False)),
    ("ConvolutionInputGenerator", lambda d: benches.bench_swg(7, 7, 4, 2, (3, 3), (2, 2), d, backpressure=False)),
    ("ConvolutionInputGenerator", lambda d: benches.bench_swg(8, 8, 1, 1, (4, 4), (4, 4), d, backpressure=False)),
    ("ConvolutionInputGenerator", lambda d: benches.bench_swg(5, 9, 3, 3, (2, 3), (2, 2), d, backpressure=False)),
    ("GroupNorm", lambda d: benches.bench_groupnorm(4, 2, 2, 2, 2, d, backpressure=False)),
    ("GroupNorm", lambda d: benches.bench_groupnorm(8, 4, 4, 3, 3, d, backpressure=False)),
    ("GroupNorm", lambda d: benches.bench_groupnorm(6, 3, 1, 4, 2, d, backpressure=False)),
    ("GroupNorm", lambda d: benches.bench_groupnorm(16, 8, 8, 5, 5, d, backpressure=False)),
    ("GroupNorm", lambda d: benches.bench_groupnorm(4, 1, 4, 2, 3, d, backpressure=False)),
    ("TimestepTable", lambda d: benches.bench_timestep_table(10, 16, 4, 5, d, backpressure=False)),
    ("TimestepTable", lambda d: benches.bench_timestep_table(7, 6, 2, 3, d, backpressure=False)),
    ("ElementwiseAdd (broadcast)", lambda d: benches.bench_broadcast("add", 8, 2, 5, d, backpressure=False)),
    ("ElementwiseMul (broadcast)", lambda d: benches.bench_broadcast("mul", 6, 3, 4, d, backpressure=False)),
    ("UpsampleNearestNeighbour", lambda d: benches.bench_upsample(2, 3, 4, 2, 2, d, backpressure=False)),
    ("UpsampleNearestNeighbour", lambda d: benches.bench_upsample(3, 2, 3, 1, 3, d, backpressure=False)),
    ("StreamingConcat", lambda d: benches.bench_concat(4, 2, 2, 2, 3, d, backpressure=False)),
    ("StreamingSplit", lambda d: benches.bench_concat(3, 6, 3, 2, 2, d, split=True, backpressure=False)),
    ("MVAU dynamic", lambda d: benches.bench_dynamic_mvau(DynamicMvauConfig(4, 6, 1, 1), d, backpressure=False)),
    ("MVAU dynamic", lambda d: benches.bench_dynamic_mvau(DynamicMvauConfig(4, 6, 2, 2, ORDER="v"), d, backpressure=False)),
    ("IntSoftmax", lambda d: benches.bench_softmax(8, 2, 3, d, backpressure=False, fo=8)),
    ("AdaLayerNorm", lambda d: benches.bench_adaln(8, 2, 4, d, backpressure=False, seed=1)),
    ("AdaLayerNorm", lambda d: benches.bench_adaln(16, 1, 4, d, backpressure=False, unroll=7, seed=1)),
    ("ElementwiseAdd (constant)", lambda d: benches.bench_elementwise_const("add", 6, 2, 4, d, backpressure=False)),
    ("StreamingDataWidthConverter", lambda d: benches.bench_dwc(2, 3, 12, d, backpressure=False)),
    ("StreamingDataWidthConverter", lambda d: benches.bench_dwc(4, 1, 8, d, backpressure=False)),
    ("StreamReorder", lambda d: reorder.bench_reorder("dit", d, backpressure=False)),
    ("StreamReorder", lambda d: reorder.bench_reorder("transpose", d, backpressure=False)),
    ("Thresholding", lambda d: benches.bench_thresholding(8, 2, 5, d, backpressure=False)),
    ("Thresholding", lambda d: benches.bench_thresholding(6, 3, 4, d, per_channel=False, steps=7, obits=3,
                                                          backpressure=False)),
    ("Thresholding", lambda d: benches.bench_thresholding(4, 4, 3, d, signed_in=False, steps=1, obits=2,
                                                          backpressure=False)),
]


def _divisor(rng: random.Random, n: int) -> int:
    return rng.choice([d for d in range(1, n + 1) if n % d == 0])


def held_out(rng: random.Random, per_type: int):
    """Random configurations of every block type, drawn after the constants were fixed."""
    for _ in range(per_type):
        mw, mh = rng.choice([4, 6, 9, 12, 16, 18, 24, 32]), rng.choice([2, 4, 6, 8, 12, 16])
        cfg = MvauConfig(mw, mh, _divisor(rng, mh), _divisor(rng, mw), WBITS=rng.choice([2, 4, 8]),
                         ABITS=rng.choice([4, 8]), ACTIVATION=rng.random() < 0.7, NIV=rng.randint(1, 4))
        yield "MVAU", lambda d, cfg=cfg: benches.bench_mvau(cfg, d, backpressure=False, seed=rng.randint(0, 999))
        m = rng.choice([4, 8])
        sparse = MvauConfig(m * rng.randint(1, 4), mh, _divisor(rng, mh), 1, N=rng.randint(1, m // 2), M=m,
                            NIV=rng.randint(1, 3))
        simd = _divisor(rng, math.gcd(sparse.MW, sparse.MW * sparse.N // m))
        sparse = MvauConfig(sparse.MW, mh, sparse.PE, simd, N=sparse.N, M=m, NIV=sparse.NIV)
        yield "MVAU N:M", lambda d, cfg=sparse: benches.bench_mvau(cfg, d, backpressure=False, seed=rng.randint(0, 999))
        c = rng.choice([2, 4, 6, 8, 12, 16])
        pe, v = _divisor(rng, c), rng.randint(1, 8)
        yield "Requant", lambda d, c=c, pe=pe, v=v: benches.bench_requant(c, pe, v, d, backpressure=False)
        yield "LutActivation", lambda d, c=c, pe=pe, v=v: benches.bench_lut(c, pe, v, d, backpressure=False)
        op = rng.choice(["add", "mul"])
        yield ("ElementwiseAdd" if op == "add" else "ElementwiseMul"), \
            lambda d, c=c, pe=pe, v=v, op=op: benches.bench_elementwise(op, c, pe, v, d, backpressure=False)
        yield "DuplicateStreams", lambda d, c=c, pe=pe, v=v: benches.bench_duplicate(c, pe, v, d, backpressure=False)
        h, w = rng.randint(1, 5), rng.randint(1, 5)
        pads = tuple(rng.randint(0, 2) for _ in range(4))
        yield "FMPadding", lambda d, h=h, w=w, c=c, pe=pe, pads=pads: benches.bench_fmpad(h, w, c, pe, pads, d,
                                                                                         backpressure=False)
        k = (rng.randint(1, 4), rng.randint(2, 4))
        stride = (rng.randint(1, min(k)),) * 2  # square, as every mapped convolution
        ih, iw = rng.randint(k[0], 9), rng.randint(k[1], 9)
        yield "ConvolutionInputGenerator", lambda d, ih=ih, iw=iw, c=c, pe=pe, k=k, s=stride: benches.bench_swg(
            ih, iw, c, pe, k, s, d, backpressure=False)
        yield "TimestepTable", lambda d, c=c, pe=pe, v=v: benches.bench_timestep_table(v + 2, c, pe, 1, d,
                                                                                        backpressure=False)
        yield "ElementwiseAdd (broadcast)", lambda d, c=c, pe=pe, v=v: benches.bench_broadcast(
            "add", c, pe, v + 1, d, backpressure=False)
        yield "UpsampleNearestNeighbour", lambda d, h=h, w=w, c=c, pe=pe: benches.bench_upsample(
            h, w, c, pe, 2, d, backpressure=False)
        yield "StreamingConcat", lambda d, c=c, pe=pe, h=h, w=w: benches.bench_concat(c, 2 * c, pe, h, w, d,
                                                                                     backpressure=False)
        yield "StreamingSplit", lambda d, c=c, pe=pe, h=h, w=w: benches.bench_concat(2 * c, c, pe, h, w, d, split=True,
                                                                                    backpressure=False)
        k_dim, m_dim, heads = rng.choice([2, 4, 6, 8]), rng.choice([2, 4, 6, 8]), rng.randint(1, 3)
        simd = _divisor(rng, math.gcd(k_dim, m_dim))  # the operand's inner loop is K or M
        dyn = DynamicMvauConfig(k_dim, m_dim, _divisor(rng, m_dim), simd, HEADS=heads, L=rng.randint(1, 4),
                                ORDER=rng.choice(["kt", "v"]), ACTIVATION=rng.random() < 0.7)
        yield "MVAU dynamic", lambda d, cfg=dyn: benches.bench_dynamic_mvau(cfg, d, backpressure=False,
                                                                             seed=rng.randint(0, 999))
        length = rng.choice([1, 4, 5, 6, 8, 12, 16])
        yield "IntSoftmax", lambda d, n=length, pe=_divisor(rng, length), r=rng.randint(1, 4), fo=rng.randint(2, 10): \
            benches.bench_softmax(n, pe, r, d, backpressure=False, fo=fo, seed=rng.randint(0, 99))
        yield "AdaLayerNorm", lambda d, c=c, pe=pe, v=v, u=rng.choice([1, 2, 4, 8, 95]): benches.bench_adaln(
            c, pe, min(v, 4), d, backpressure=False, unroll=u, seed=rng.randint(0, 99))
        yield "ElementwiseAdd (constant)", lambda d, c=c, pe=pe, v=v, op=op: benches.bench_elementwise_const(
            op, c, pe, v, d, backpressure=False, broadcast=rng.random() < 0.5)
        lanes_in, lanes_out = rng.randint(1, 8), rng.randint(1, 8)
        yield "StreamingDataWidthConverter", lambda d, i=lanes_in, o=lanes_out, k=rng.randint(1, 3): benches.bench_dwc(
            i, o, i * o // math.gcd(i, o) * k, d, backpressure=False)
        yield "StreamReorder", lambda d, g=rng.choice([2, 3, 4]), p=rng.choice([2, 4]), c=rng.choice([1, 2]): \
            reorder.bench_reorder(reorder.unpatchify_sequence(g, p, c), d, backpressure=False)
        groups = _divisor(rng, c)
        yield "GroupNorm", lambda d, c=c, groups=groups, pe=pe, h=h, w=w: benches.bench_groupnorm(
            c, groups, pe, h, w, d, backpressure=False, seed=rng.randint(0, 99))


def held_out_later(rng: random.Random, per_type: int):
    """Held-out configurations of block types added after the first freeze, from their own generator so
    that the earlier rows stay the same configurations."""
    for _ in range(per_type):
        obits = rng.randint(1, 6)
        c = rng.choice([2, 4, 6, 8, 12, 16])
        yield "Thresholding", lambda d, c=c, pe=_divisor(rng, c), v=rng.randint(1, 8), o=obits, \
            steps=rng.randint(1, (1 << obits) - 1), ib=rng.choice([4, 8, 12]), s=rng.random() < 0.5: \
            benches.bench_thresholding(c, pe, v, d, backpressure=False, obits=o, steps=steps, ibits=ib, signed_in=s,
                                       per_channel=rng.random() < 0.7, seed=rng.randint(0, 99))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--per-type", type=int, default=4, help="held-out configurations per block type")
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    rows = []
    cases = [(name, fn, False) for name, fn in CALIBRATION]
    cases += [(name, fn, True) for name, fn in held_out(random.Random(args.seed), args.per_type)]
    cases += [(name, fn, True) for name, fn in held_out_later(random.Random(args.seed + 1), args.per_type)]
    for name, fn, held in cases:
        with tempfile.TemporaryDirectory() as d:
            r = fn(Path(d))
        keys = ("ii", "latency")  # what every bench measures (some also report a first-output delay)
        rows.append({"node": name, "config": r["config"], "measured": {k: r["measured"][k] for k in keys},
                     "modelled": {k: r["modelled"][k] for k in keys},
                     "held_out": held, "bit_exact": r["bit_exact"], "sim": r["sim"]})
        print(name, held, r["measured"], r["modelled"], flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "cycles.json").write_text(json.dumps({"rows": rows, "seed": args.seed, "provenance": provenance()},
                                                     indent=2) + "\n")
    agree = sum(r["measured"] == r["modelled"] for r in rows)
    lines = ["# Measured vs modelled cycles of the RTL blocks", "",
             "    python experiments/rtl_cycles.py", "",
             f"{agree} of {len(rows)} rows agree exactly (II and latency); "
             f"{sum(r['held_out'] for r in rows)} rows are held out. II: first output of evaluation 2 minus that "
             "of evaluation 1, streamed back to back; latency: first input to last output of evaluation 1.", "",
             "| node | held out | config | II measured | II model | latency measured | latency model | bit-exact |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        cfg = ", ".join(f"{k}={v}" for k, v in r["config"].items())
        lines.append(f"| {r['node']} | {'yes' if r['held_out'] else 'no'} | {cfg} | {r['measured']['ii']} | "
                     f"{r['modelled']['ii']} | {r['measured']['latency']} | {r['modelled']['latency']} | {r['bit_exact']} |")
    (args.out / "cycles.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
