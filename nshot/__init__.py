"""nshot: N-shot neural architecture search with weight-sharing supernets."""
__version__ = "0.1.0"
