import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import TINY_UNET, fuzz

from hwsim.diffusion.schedule import NoiseSchedule
from hwsim.nets import build_net
from hwsim.quant.calibrate import calibration_inputs, collect_ranges
from hwsim.quant.float_scales import fixed_point_multiplier, measure, requant_fixed_point, requant_float


@settings(max_examples=fuzz(200), deadline=None)
@given(st.floats(1e-6, 1e3), st.integers(4, 32))
def test_multiplier_is_the_nearest_in_its_width(ratio, mbits):
    m, n = fixed_point_multiplier(ratio, mbits)
    assert 2 ** (mbits - 1) <= m < 2**mbits
    assert abs(m * 2.0**-n - ratio) <= ratio * 2.0**-mbits


@settings(max_examples=fuzz(100), deadline=None)
@given(st.lists(st.integers(-(2**24), 2**24), min_size=1, max_size=50), st.integers(-12, 4), st.integers(8, 32))
def test_power_of_two_ratios_are_exact(acc, exp, mbits):
    """With a power-of-two scale ratio the multiplier is exact, so both requantizers agree everywhere."""
    acc = np.array(acc)
    m, n = fixed_point_multiplier(2.0**exp, mbits)
    assert np.array_equal(requant_fixed_point(acc, m, n, -128, 127), requant_float(acc, 2.0**exp, -128, 127))


def test_measured_mismatch_falls_with_multiplier_width():
    torch.manual_seed(0)
    net = build_net("unet", {"in_channels": 1, **TINY_UNET}).double().eval()
    inputs = calibration_inputs(net.float(), NoiseSchedule(), (1, 8, 8), num_samples=4, steps=5)
    net = net.double()
    ranges = collect_ranges(net, inputs)
    report = measure(net, ranges, inputs[:6], weight_bits=8, act_bits=8, mbits=(4, 8, 32))
    rates = [report["overall"][f"m{b}"]["rate"] for b in (4, 8, 32)]
    assert report["overall"]["m4"]["values"] > 1000
    assert rates[0] > rates[1] >= rates[2] and rates[0] > 0.01  # a 4-bit multiplier is visibly off
    assert report["overall"]["m32"]["max_lsb"] <= 1


@settings(max_examples=fuzz(200), deadline=None)
@given(st.floats(1e-6, 1e3), st.integers(3, 16))
def test_directed_multiplier_rounds_the_way_asked(ratio, mbits):
    """Float scales round the weight scale up and the input gain down, so the calibrated range is never clipped."""
    up, down = (fixed_point_multiplier(ratio, mbits, r) for r in ("up", "down"))
    for m, _ in (up, down):
        assert 2 ** (mbits - 1) <= m < 2**mbits
    assert down[0] * 2.0 ** -down[1] <= ratio <= up[0] * 2.0 ** -up[1]
    assert up[0] * 2.0 ** -up[1] - down[0] * 2.0 ** -down[1] <= ratio * 2.0 ** (1 - mbits)
