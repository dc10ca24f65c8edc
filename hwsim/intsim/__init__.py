"""The bit-exact integer simulator: numpy references of every op and Numba kernels equal to them."""
