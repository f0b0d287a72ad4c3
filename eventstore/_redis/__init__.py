"""The Redis layer: sends what the core builds and hands replies back to it."""
