"""One module per integer op: a numpy reference (the definition) and a Numba kernel proven equal."""
