"""pooltools: the helper package of the pooling-explained notebook series."""
__version__ = "0.1.0"
