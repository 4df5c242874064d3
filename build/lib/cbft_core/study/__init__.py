"""The study: presets, the model zoo, cached experiments, the pipeline, the claims and the cache; composes the kernels."""
