"""Experiment specifications: a base configuration, grid axes and explicit cases -> jobs.

Cases that differ only in their iteration count share one job: the job runs to the largest
count and snapshots the others on the way (the paper's 500, 4000 and 10000 Adam iterations are
one 10000-iteration run).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.config import FIELDS, StyleConfig, load_file, resolve
from ..errors import ConfigError
from ..image.samples import DEMO_CONTENT, DEMO_STYLE

#: Most cases one experiment may hold: each is a run, a report row and a contact-sheet tile.
MAX_CASES = 1000
SPEC_KEYS = ("name", "content", "style", "base", "grid", "cases")


@dataclass(frozen=True)
class Case:
    """One configuration the report shows; ``label`` names what distinguishes it."""

    id: str
    label: str
    config: StyleConfig


@dataclass(frozen=True)
class Job:
    """One optimisation run; it produces every case whose config differs only in iterations."""

    id: str
    config: StyleConfig
    cases: tuple[Case, ...]


@dataclass(frozen=True)
class Experiment:
    name: str
    content: str
    styles: tuple[str, ...]
    cases: tuple[Case, ...]
    axes: tuple[str, ...]  # the fields that vary between cases

    @property
    def jobs(self) -> list[Job]:
        groups: dict[str, list[Case]] = {}
        for case in self.cases:
            groups.setdefault(_digest(_without_iterations(case.config)), []).append(case)
        jobs = []
        for key, cases in groups.items():
            longest = max(case.config.iterations for case in cases)
            config = cases[0].config.replace(iterations=longest)
            jobs.append(Job(key, config, tuple(sorted(cases, key=lambda c: c.config.iterations))))
        return jobs

    @property
    def fingerprint(self) -> str:
        return _digest(
            {
                "content": self.content,
                "styles": self.styles,
                "cases": [case.config.to_dict() for case in self.cases],
            }
        )

    def describe(self) -> dict[str, Any]:
        """What ``experiment.json`` records: enough to rebuild the report from files alone."""
        return {
            "name": self.name,
            "content": self.content,
            "styles": list(self.styles),
            "fingerprint": self.fingerprint,
            "axes": list(self.axes),
            "cases": [
                {"id": c.id, "label": c.label, "config": c.config.to_dict()} for c in self.cases
            ],
        }


def _digest(data: Any) -> str:
    return hashlib.sha1(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _without_iterations(config: StyleConfig) -> dict[str, Any]:
    values = config.to_dict()
    values.pop("iterations")
    return values


def build(
    name: str,
    content: str,
    styles: list[str],
    base: dict[str, Any],
    grid: dict[str, list[Any]],
    cases: list[dict[str, Any]],
) -> Experiment:
    """Expand the grid (a cartesian product) and add the explicit cases, all on top of base."""
    preset = base.pop("preset", "default")
    for key in (*base, *grid, *(k for case in cases for k in case if k != "name")):
        if key not in FIELDS:
            raise ConfigError(f"unknown field {key!r} in the spec; valid: {', '.join(FIELDS)}")
    for axis, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"grid axis {axis!r} must be a non-empty list of values")
    count = (math.prod(len(values) for values in grid.values()) if grid else 0) + len(cases)
    if count > MAX_CASES:
        raise ConfigError(
            f"the spec has {count:,} cases (grid and explicit), over the limit of {MAX_CASES:,}; "
            "split it into several experiments"
        )
    overrides = [dict(zip(grid, combo, strict=True)) for combo in itertools.product(*grid.values())]
    if not grid:
        overrides = []
    overrides += [{k: v for k, v in case.items() if k != "name"} for case in cases]
    names = [""] * (len(overrides) - len(cases)) + [str(c.get("name", "")) for c in cases]
    if not overrides:
        raise ConfigError("the spec has an empty grid and no cases: nothing to run")
    configs = [resolve(preset, **{**base, **extra}) for extra in overrides]
    axes = tuple(f for f in FIELDS if len({json.dumps(getattr(c, f)) for c in configs}) > 1)
    built = []
    for config, given in zip(configs, names, strict=True):
        label = given or ", ".join(f"{axis}={getattr(config, axis)}" for axis in axes) or "base"
        built.append(Case(_digest(config.to_dict()), label, config))
    if len({case.id for case in built}) != len(built):
        raise ConfigError("two cases of the spec have the same configuration")
    return Experiment(name, content, tuple(styles), tuple(built), axes)


def load_spec(path: str | Path) -> Experiment:
    """Read a TOML (or JSON) spec; image paths are relative to the spec's folder."""
    data = load_file(path)
    unknown = sorted(set(data) - set(SPEC_KEYS))
    if unknown:
        raise ConfigError(f"unknown key {unknown[0]!r} in the spec; valid: {', '.join(SPEC_KEYS)}")
    folder = Path(path).parent

    def locate(value: str) -> str:
        return str(value if Path(value).is_absolute() else folder / value)

    styles = data.get("style", str(DEMO_STYLE))
    styles = [styles] if isinstance(styles, str) else list(styles)
    return build(
        str(data.get("name", Path(path).stem)),
        locate(data.get("content", str(DEMO_CONTENT))),
        [locate(s) for s in styles],
        dict(data.get("base", {})),
        dict(data.get("grid", {})),
        list(data.get("cases", [])),
    )


#: Carvalho & Oliveira's Section 4: (optimizer, learning rate, iterations) of the 11 cases.
PAPER_CASES = (
    ("adam", 0.01, 4000),
    ("adam", 0.01, 10000),
    ("adam", 0.01, 500),
    ("adamax", 0.01, 4000),
    ("adadelta", 0.01, 4000),
    ("adadelta", 0.01, 500),
    ("sgd", 0.01, 4000),
    ("sgd", 0.01, 500),
    ("adam", 0.1, 4000),
    ("adam", 0.1, 500),
    ("adam", 1.0, 500),
)


def paper(
    size: int | None = None,
    iterations_scale: float = 1.0,
    content: str | None = None,
    style: str | None = None,
) -> Experiment:
    """The paper's study; ``size`` and ``iterations_scale`` shrink it for a CPU."""
    if not 0 < iterations_scale <= 1:
        raise ConfigError("--iterations-scale must be in (0, 1]")
    base: dict[str, Any] = {"preset": "paper", "log_every": 0}
    if size is not None:
        base["size"] = size
    cases = [
        {
            "name": f"{opt} lr={lr:g} {max(1, round(its * iterations_scale))} it",
            "optimizer": opt,
            "lr": lr,
            "iterations": max(1, round(its * iterations_scale)),
        }
        for opt, lr, its in PAPER_CASES
    ]
    return build("paper", content or str(DEMO_CONTENT), [style or str(DEMO_STYLE)], base, {}, cases)
