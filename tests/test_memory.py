"""Bounded memory: recomputed activations change nothing but memory; the estimate made before a
run is close to the measured peak; a run that would not fit adapts or is refused up front."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from estilo.core import device, memory
from estilo.core.config import resolve
from estilo.core.device import compute_dtype
from estilo.core.inputs import RunInputs
from estilo.core.stylize import stylize
from estilo.core.vgg import VGG19Features, Weights
from estilo.errors import ConfigError

SMALL = {"log_every": 0, "device": "cpu", "scales": 1}


def test_recomputed_features_and_gradients_equal_stored_ones(weights: Weights) -> None:
    layers = ["relu1_1", "conv2_1", "relu3_1", "relu4_2", "relu5_1"]
    image = torch.rand(1, 3, 64, 80, generator=torch.Generator().manual_seed(1))
    results = []
    for recompute in (False, True):
        net = VGG19Features(weights, layers, recompute=recompute)
        x = image.clone().requires_grad_(True)
        feats = net(x)
        sum((f**2).mean() for f in feats.values()).backward()  # type: ignore[union-attr]
        results.append((feats, x.grad))
    (stored, grad_stored), (recomputed, grad_recomputed) = results
    assert list(stored) == list(recomputed) == layers
    for name in layers:
        torch.testing.assert_close(stored[name], recomputed[name])
    assert grad_stored is not None and grad_recomputed is not None
    assert grad_stored.abs().sum() > 0
    torch.testing.assert_close(grad_stored, grad_recomputed, rtol=1e-4, atol=1e-9)


def test_a_recomputed_run_gives_the_plain_runs_losses(
    content: torch.Tensor, style: torch.Tensor, weights: Weights
) -> None:
    losses = []
    for recompute in ("off", "on"):
        config = resolve(**SMALL, iterations=5, recompute=recompute)
        result = stylize(RunInputs.make(content[None], style[None]), config, weights=weights)
        assert result.memory is not None and result.memory.recompute == (recompute == "on")
        losses.append([record.loss for record in result.history])
    assert losses[0] == pytest.approx(losses[1], rel=1e-4)


def test_estimate_is_smaller_with_recompute_bfloat16_and_adam() -> None:
    config = resolve(size=1024, optimizer="lbfgs")
    size, styles = (1024, 1024), [(1024, 1024)]
    plain = memory.estimate(config, size, styles, autocast=False, recompute=False)
    assert memory.estimate(config, size, styles, autocast=False, recompute=True) < 0.9 * plain
    assert memory.estimate(config, size, styles, autocast=True, recompute=False) < plain
    adam = resolve(size=1024, optimizer="adam")
    assert memory.estimate(adam, size, styles, autocast=False, recompute=False) < 0.7 * plain
    # Four times the pixels: close to four times the memory, once the fixed costs are off.
    big = memory.estimate(config, (2048, 2048), [(2048, 2048)], autocast=False, recompute=False)
    assert 3.5 < big / plain < 4.1


MEASURE = """
import json, torch
from estilo.core.config import resolve
from estilo.core.inputs import RunInputs
from estilo.core.memory import peak_resident
from estilo.core.stylize import stylize
from estilo.pipeline import cached_weights
weights = cached_weights("")
g = torch.Generator().manual_seed(0)
image, style = torch.rand(1, 3, 96, 96, generator=g), torch.rand(1, 3, 96, 96, generator=g)
config = resolve(size=96, iterations=3, scales=1, optimizer="adam", device="cpu", log_every=0)
before = int(open("/proc/self/statm").read().split()[1]) * 4096  # resident bytes now
result = stylize(RunInputs.make(image, style), config, weights=weights)
peak = peak_resident()
print(json.dumps({"estimate": before + result.memory.estimate, "peak": peak}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")
def test_estimate_is_within_a_quarter_of_the_measured_peak() -> None:
    done = subprocess.run(
        [sys.executable, "-c", MEASURE], capture_output=True, text=True, check=True
    )
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert 0.75 < figures["estimate"] / figures["peak"] < 1.25, figures


def test_a_run_that_does_not_fit_recomputes_and_says_so(
    content: torch.Tensor, style: torch.Tensor, weights: Weights, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = resolve(**SMALL, iterations=2)
    autocast = compute_dtype(config.precision, torch.device("cpu")) is not None
    needed = memory.estimate(config, (48, 64), [(64, 64)], autocast=autocast, recompute=False)
    monkeypatch.setattr(memory, "free_bytes", lambda device: needed - 1)
    notices: list[str] = []
    result = stylize(
        RunInputs.make(content[None], style[None]), config, weights=weights, notify=notices.append
    )
    assert result.memory is not None and result.memory.recompute
    assert len(notices) == 1 and "recomputing activations" in notices[0]
    assert result.status == "completed"


def test_a_run_that_cannot_fit_is_refused_before_it_starts(
    content: torch.Tensor, style: torch.Tensor, weights: Weights, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(memory, "free_bytes", lambda device: 2**20)
    config = resolve(**SMALL, iterations=2)
    called: list[object] = []
    with pytest.raises(
        ConfigError, match=r"needs about .* GiB but 0\.0 GiB is free.*try size = \d+"
    ):
        stylize(
            RunInputs.make(content[None], style[None]),
            config,
            weights=weights,
            callback=called.append,
        )
    assert not called


def test_channels_last_and_bfloat16_give_the_float32_objective(
    content: torch.Tensor, style: torch.Tensor, weights: Weights
) -> None:
    # The GPU path (NHWC maps, bfloat16 convolutions, float32 losses) run on the CPU: the
    # same objective as the plain path, exactly for the layout, closely for bfloat16.
    from estilo.core.objective import Objective

    config = resolve(**SMALL)
    layers = set(config.content_layers) | set(config.style_layers)
    losses = {}
    for name, kwargs in {
        "plain": {},
        "nhwc": {"channels_last": True},
        "bf16": {"channels_last": True, "autocast": torch.bfloat16},
    }.items():
        net = VGG19Features(weights, layers, **kwargs)  # type: ignore[arg-type]
        objective = Objective(net, RunInputs.make(content[None], style[None]), config)
        losses[name] = float(objective(content[None])[0])
    assert losses["nhwc"] == pytest.approx(losses["plain"], rel=1e-5)
    assert losses["bf16"] == pytest.approx(losses["plain"], rel=0.05)
    assert losses["plain"] > 0


@pytest.mark.parametrize("native", [True, False])
def test_auto_precision_is_bfloat16_only_where_the_cpu_has_it(
    monkeypatch: pytest.MonkeyPatch, native: bool
) -> None:
    # The yardstick saw no change worth float32's cost where bfloat16 is native
    # (docs/quality.md, eleventh run); where it is emulated it is slower.
    monkeypatch.setattr(device, "native_cpu_bfloat16", lambda: native)
    cpu = torch.device("cpu")
    assert compute_dtype(resolve().precision, cpu) is (torch.bfloat16 if native else None)
    assert compute_dtype("float32", cpu) is None
    assert compute_dtype("bfloat16", cpu) is torch.bfloat16
    assert compute_dtype(resolve(preset="paper").precision, cpu) is None  # Keras's arithmetic


GIB = memory.GIB


def fake_system(monkeypatch: pytest.MonkeyPatch, available: int, cgroup: int | None) -> None:
    monkeypatch.setattr(
        memory.psutil, "virtual_memory", lambda: type("Memory", (), {"available": available})
    )
    monkeypatch.setattr(memory, "_cgroup_room", lambda: cgroup)


def test_cpu_room_is_the_systems_available_memory_within_a_cgroup_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake_system(monkeypatch, 5 * GIB, None)  # psutil, on any OS: no /proc needed
    assert memory.free_bytes(torch.device("cpu")) == 5 * GIB
    fake_system(monkeypatch, 5 * GIB, 3 * GIB)  # a container allowed less than the machine has
    assert memory.free_bytes(torch.device("cpu")) == 3 * GIB


def test_mps_room_is_metals_working_set_less_what_the_driver_holds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(torch.mps, "recommended_max_memory", lambda: 12 * GIB)
    monkeypatch.setattr(torch.mps, "driver_allocated_memory", lambda: 2 * GIB)
    fake_system(monkeypatch, 64 * GIB, None)
    mps = torch.device("mps")
    assert memory.free_bytes(mps) == 10 * GIB
    fake_system(monkeypatch, 6 * GIB, None)  # unified memory: other programs hold the rest
    assert memory.free_bytes(mps) == 6 * GIB
    # The plan uses it: a 4096 px run on a 6 GiB Mac is refused before it starts.
    with pytest.raises(ConfigError, match=r"GiB is free on mps; try size = \d+"):
        memory.plan(resolve(size=4096), (4096, 4096), [(4096, 4096)], mps, autocast=False)
    assert memory.plan(resolve(size=512), (512, 512), [(512, 512)], mps, autocast=False).free
