"""VGG19 layer names, without torch, so the CLI can check them before loading anything.

Names follow pystiche and the Gatys et al. reference code: ``conv1_1``, ``relu1_1``, ...,
``pool1``, ... ``relu5_4``. The Keras names (``block1_conv1``, ``block1_pool``) are accepted as
aliases. Keras builds each ``Conv2D`` with ``activation="relu"``, so the tensor Keras calls
``block1_conv1`` is the *rectified* output: it is our ``relu1_1``, not ``conv1_1``. The paper's
layers therefore map onto post-ReLU features, as in every reference implementation
(docs/method.md §1.1).
"""

from __future__ import annotations

from collections.abc import Iterable

from ..errors import ConfigError

# Convolutions per block in VGG19 (Simonyan & Zisserman 2015, configuration E).
BLOCK_DEPTHS: tuple[int, ...] = (2, 2, 4, 4, 4)
CHANNELS: tuple[int, ...] = (64, 128, 256, 512, 512)


def _build_names() -> tuple[str, ...]:
    names: list[str] = []
    for block, depth in enumerate(BLOCK_DEPTHS, start=1):
        for index in range(1, depth + 1):
            names += [f"conv{block}_{index}", f"relu{block}_{index}"]
        names.append(f"pool{block}")
    return tuple(names)


#: Every addressable layer, in network order.
LAYER_NAMES: tuple[str, ...] = _build_names()
#: The 16 convolutions, in order; their weights are stored under the Keras names.
CONV_NAMES: tuple[str, ...] = tuple(name for name in LAYER_NAMES if name.startswith("conv"))


def keras_name(conv: str) -> str:
    """``conv3_2`` -> ``block3_conv2``: the key the Keras weight files use."""
    block, index = conv.removeprefix("conv").split("_")
    return f"block{block}_conv{index}"


def canonical_layer(name: str) -> str:
    """Return the estilo name of a layer given in estilo or Keras spelling.

    Raises:
        ConfigError: the name is not a VGG19 layer.
    """
    name = name.strip()
    if name in LAYER_NAMES:
        return name
    if name.startswith("block"):
        block, _, rest = name.removeprefix("block").partition("_")
        if rest.startswith("conv"):
            alias = f"relu{block}_{rest.removeprefix('conv')}"  # Keras convs include the ReLU
        else:
            alias = f"pool{block}" if rest == "pool" else ""
        if alias in LAYER_NAMES:
            return alias
    raise ConfigError(
        f"unknown VGG19 layer {name!r}; use conv1_1 .. relu5_4, pool1 .. pool5 "
        "or the Keras names block1_conv1 .. block5_pool"
    )


def layer_index(name: str) -> int:
    """Position of a (canonical) layer in the network, used to cut it after the deepest one."""
    return LAYER_NAMES.index(name)


def layer_channels(name: str) -> int:
    """Number of feature maps a layer outputs."""
    block = next(char for char in name if char.isdigit())
    return CHANNELS[int(block) - 1]


def min_input_size(layers: Iterable[str]) -> int:
    """The smallest image side that still gives the deepest of ``layers`` one position."""
    deepest = max(layer_index(name) for name in layers)
    pools = sum(name.startswith("pool") for name in LAYER_NAMES[:deepest])
    return int(2**pools)
