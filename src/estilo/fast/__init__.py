"""Fast mode: train a feed-forward network for a style once, then paint photos in one pass.

Johnson et al. 2016's "model-optimisation-based" branch of style transfer, built on estilo's
own objective: ``train`` fits the network (core/transformer.py) on a folder of photos,
``apply`` paints with it, ``export`` writes it as ONNX. Imported by the CLI and the API only
when fast mode is used.
"""

from __future__ import annotations

from .model import FastModel, ModelError, load_model
from .painting import apply, export
from .training import Trained, train

__all__ = ["FastModel", "ModelError", "Trained", "apply", "export", "load_model", "train"]
