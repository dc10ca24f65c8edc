"""The bit-exact integer simulator: numpy references of every op and Numba kernels equal to them.

Public API: ``hwsim.intsim.Simulator(path)`` (:class:`hwsim.intsim.executor.Simulator`), loaded on
first use so that importing an op or kernel module does not compile the executor's dependencies.
"""

__all__ = ["Simulator"]


def __getattr__(name: str):
    if name == "Simulator":
        from hwsim.intsim.executor import Simulator

        return Simulator
    raise AttributeError(f"module 'hwsim.intsim' has no attribute {name!r}")
