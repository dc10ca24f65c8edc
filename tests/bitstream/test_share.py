"""The largest share of a denoiser that fits a device (issue 7, 4d): the two-pointer window search
against a brute force over every window, on the tiny U-Net with the ECP5-85F's budget cut down so
that only part of it fits."""

import dataclasses

import pytest

from hwsim.bitstream.share import largest_window
from hwsim.dataflow.folding import assign_multipliers
from hwsim.dataflow.mapping import map_integer_graph
from hwsim.dataflow.resources import Resources, fifo_memory, load_device, total
from hwsim.dataflow.schedule import schedule


def _small_device(graph, share: float):
    """The 85F with every budget cut to ``share`` of what the whole graph needs."""
    dev = load_device("ecp5-85f")
    nodes = [n for n in graph.nodes if not n.op_type.startswith("Host")]
    assign_multipliers(graph, dev, nodes)
    need = total(nodes, dev)
    budget = Resources(*(max(1.0, getattr(need, k) * share) for k in ("lut", "ff", "mult", "bram")))
    return dataclasses.replace(dev, budget=budget), nodes


def _brute_force(graph, dev, nodes, headroom):
    best = 0
    fifos, lanes = schedule(graph).fifos, {n.name: n.out_lanes() for n in graph.nodes}
    for lo in range(len(nodes)):
        for hi in range(lo + 1, len(nodes) + 1):
            part = nodes[lo:hi]
            assign_multipliers(graph, dev, part)
            used = total(part, dev) + fifo_memory([f for f in fifos if f.consumer in {n.name for n in part}], dev, lanes)
            if not all(getattr(used, k) <= getattr(dev.budget, k) * (1 - headroom) for k in ("lut", "ff", "mult", "bram")):
                break
            best = max(best, sum(n.macs() for n in part))
    return best


@pytest.mark.parametrize("share", [0.3, 0.6])
def test_window_is_the_largest_that_fits(unet_graph, share):
    graph = map_integer_graph(unet_graph, steps=10)
    dev, nodes = _small_device(graph, share)
    window = largest_window(graph, dev, headroom=0.05)
    names = [n.name for n in nodes]
    first = names.index(window.names[0])
    assert window.names == names[first:first + len(window.names)]  # contiguous in graph order
    assert 0 < window.macs == sum(n.macs() for n in nodes if n.name in set(window.names)) < window.graph_macs
    assert window.share == window.macs / window.graph_macs
    for k in ("lut", "ff", "mult", "bram"):
        assert getattr(window.estimate, k) <= getattr(dev.budget, k) * 0.95
    assert window.macs == _brute_force(graph, dev, nodes, 0.05)


def test_bad_headroom_and_nothing_fits(unet_graph):
    graph = map_integer_graph(unet_graph, steps=10)
    with pytest.raises(ValueError, match="headroom"):
        largest_window(graph, load_device("ecp5-85f"), headroom=1.0)
    tiny = dataclasses.replace(load_device("ecp5-85f"), budget=Resources(1, 1, 0, 0))
    with pytest.raises(ValueError, match="no single node"):
        largest_window(graph, tiny)
