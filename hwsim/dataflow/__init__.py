"""Dataflow mapping and cost models: folded nodes, cycles, memory, resources and energy."""
