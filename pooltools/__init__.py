"""pooltools: the helper package of the pooling-explained notebook series.

The from-scratch pooling functions (NumPy, equal to ``torch.nn.functional``: max, average,
adaptive max and adaptive average pooling, the backward pass, unpooling) and the shape rule are
importable from here; the other modules (``config``, ``data``, ``viz``, ``widgets``, ``nn``,
``models``, ``train``, ``checkpoint``, ``bench``) are imported by name.
"""

from pooltools.adaptive import adaptive_avg_pool2d, adaptive_max_pool2d
from pooltools.pooling import (
    avg_pool2d,
    max_pool2d,
    max_pool2d_backward,
    max_pool2d_naive,
    max_unpool2d,
)
from pooltools.shapes import pool_output_size, receptive_field

__version__ = "0.1.0"
__all__ = [
    "adaptive_avg_pool2d",
    "adaptive_max_pool2d",
    "avg_pool2d",
    "max_pool2d",
    "max_pool2d_backward",
    "max_pool2d_naive",
    "max_unpool2d",
    "pool_output_size",
    "receptive_field",
]
