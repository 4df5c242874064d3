"""Kernels: data, models, paths, barriers, alignment, training and fine-tuning; nothing here knows of presets or the book."""
