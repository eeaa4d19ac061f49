"""What a CNN's layers respond to: activations, receptive fields, visualizations and probes.

One module per technique (as pytorch-cnn-visualizations keeps one file per technique),
re-exported here; each function is built on forward/backward hooks that are always removed again
(even when a forward pass raises), each run in eval mode (BatchNorm uses its running statistics)
with every module's train/eval flag restored afterwards. Tensors come back on the CPU.

=============================  ===============================================================
:func:`capture`                activations of named layers (:func:`capturing`: as a context)
:func:`feature_layers`         the ReLU and pooling outputs, in order (what notebook 4 walks)
:func:`receptive_fields`       the theoretical receptive field of every layer
:func:`effective_receptive_field`  Luo et al. (2016): where the gradient of one unit lands
:func:`top_activating`         the images (and input patches) that excite a channel most
:func:`visualize_channel`      activation maximization by gradient ascent on the input
:func:`guided_backprop`        Springenberg et al. (2015): gradients through "guided" ReLUs
:func:`deconvnet`              Zeiler & Fergus (2014): unpool with max-pool switches, rectify,
                               transposed convs, down to the input
:func:`linear_probe`           Alain & Bengio (2016): how linearly decodable a layer's features are
:func:`linear_probes`          the same for several layers, with one pass over the images
:func:`fit_probe`              a probe on features captured once (full-batch, deterministic)
:func:`conv_depths`            convolutions so far at each feature layer (a fair x axis)
:func:`class_purity`           how class-specific a channel's top-k images are
:func:`erf_centre`             where the ERF's unit looks: the centre for boxes and squares
:func:`mass_square`            the square around that centre holding a fraction of an ERF's mass
=============================  ===============================================================

Layers are named as in ``model.named_modules()`` (``"stage2.relu2"``, ``"stage1.pool"``).
"""

from pooltools.features.actmax import VisResult, visualize_channel, visualize_channels
from pooltools.features.attribution import deconvnet, guided_backprop
from pooltools.features.hooks import capture, capturing, feature_layers
from pooltools.features.patches import TopK, class_purity, top_activating, top_activating_channels
from pooltools.features.probes import (
    ProbeResult,
    conv_depths,
    fit_probe,
    linear_probe,
    linear_probes,
)
from pooltools.features.receptive import (
    effective_receptive_field,
    erf_centre,
    mass_square,
    receptive_fields,
)

__all__ = [
    "capture",
    "capturing",
    "feature_layers",
    "receptive_fields",
    "effective_receptive_field",
    "erf_centre",
    "mass_square",
    "TopK",
    "top_activating",
    "top_activating_channels",
    "class_purity",
    "VisResult",
    "visualize_channel",
    "visualize_channels",
    "guided_backprop",
    "deconvnet",
    "ProbeResult",
    "linear_probe",
    "linear_probes",
    "conv_depths",
    "fit_probe",
]
