"""The whole-platform demo: a simulated IOP day driven through the public APIs."""
