"""The study: presets, the registry of its steps and their graph, the pipeline, plan and sweep, the claims and the cache; composes the kernels."""
