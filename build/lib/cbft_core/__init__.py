"""cbft_core: the kernels of Mechanistic Mode Connectivity (Lubana et al., ICML 2023)."""
__version__ = "0.1.0"
