"""Real FPGA bitstreams of generated designs with the open toolchain (Yosys, nextpnr, ecppack/icepack
from the yowasp pip packages), and reports of their resources and post-route Fmax.

:func:`build` is the whole flow (``hwsim bitstream`` on the command line); docs/bitstreams.md says
what the report holds and what the numbers mean.
"""

from hwsim.bitstream.devices import DEVICES, Device, get_device
from hwsim.bitstream.errors import BitstreamError, DesignDoesNotFit, TimingNotMet, ToolMissing
from hwsim.bitstream.flow import REPORT, build

__all__ = ["DEVICES", "Device", "get_device", "BitstreamError", "DesignDoesNotFit", "TimingNotMet", "ToolMissing",
           "REPORT", "build"]
