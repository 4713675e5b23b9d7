"""fishcat: train a small image classifier on folders of pictures and classify screenshots and photos."""

__version__ = "0.1.0"
