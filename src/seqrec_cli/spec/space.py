"""The search space of `seqrec sweep`: a YAML file validated like the spec.

    params:                       # dotted spec keys -> typed distributions
      train.lr: {type: log_float, low: 1.0e-4, high: 1.0e-2}
      model.dropout: {type: float, low: 0.1, high: 0.6}
      model.layers: {type: int, low: 1, high: 3}
      model.hidden: {type: categorical, choices: [32, 64, 128]}
    pruner: {kind: median, startup_trials: 3, warmup_epochs: 5}   # or hyperband, or none
    sampler: {seed: 0, startup_trials: 10}                        # TPE

Every key must name a field of the spec models, and every bound or choice must be a value the spec
accepts there (checked against the user's own spec, so `model.dropout` high 1.0 fails as the spec
would). data.*, eval.*, runtime.*, name and train.monitor are refused: the objective must be
measured on the same validation cases, the same way, in every trial.
"""

from __future__ import annotations

import copy
import hashlib
import json
import types
import typing
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from seqrec_cli.errors import SpecError, UserError
from seqrec_cli.spec.loader import _key_lines, apply_override
from seqrec_cli.spec.models import ExperimentSpec, Section

Scalar = bool | int | float | str | None

# Why each of these cannot be searched (the objective would stop being one quantity).
FROZEN_KEYS = {
    "name": "trials are named <study>-t<number> by the sweep",
    "train.monitor": "the sweep optimises the spec's train.monitor; every trial must report the same metric",
    "train.init_from": "every trial must start from the same place",
}
FROZEN_SECTIONS = {
    "data": "the data section decides the validation cases; every trial must be scored on the same ones",
    "eval": "the eval section decides how validation is measured; every trial must be measured alike",
    "runtime": "the runtime section is not a hyperparameter (set it with --set)",
    "export": "the export section does not change training",
}


class _Dist(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FloatDist(_Dist):
    """Uniform on [low, high], on a grid of `step` when given."""

    type: Literal["float"]
    low: float
    high: float
    step: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> FloatDist:
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        if self.step is not None and self.step > self.high - self.low:
            raise ValueError(f"step ({self.step}) is wider than the range [{self.low}, {self.high}]")
        return self

    def bounds(self) -> list[Scalar]:
        """Values to try on the spec before any trial runs."""
        # an inner value too: a float range on an integer key fails here, not in the middle of the sweep
        inner = self.low + self.step if self.step else self.low + 0.37 * (self.high - self.low)
        return [self.low, self.high, inner]


class LogFloatDist(_Dist):
    """Log-uniform on [low, high] (learning rates, weight decay): each decade is equally likely."""

    type: Literal["log_float"]
    low: float = Field(gt=0)
    high: float = Field(gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> LogFloatDist:
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        return self

    def bounds(self) -> list[Scalar]:
        return [self.low, self.high, (self.low * self.high) ** 0.5]


class IntDist(_Dist):
    """Integers low..high inclusive, every `step`-th; `log` for log-uniform (then step must be 1)."""

    type: Literal["int"]
    low: int
    high: int
    step: int = Field(default=1, ge=1)
    log: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> IntDist:
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        if self.log and (self.low < 1 or self.step != 1):
            raise ValueError("log: true needs low >= 1 and step 1")
        if (self.high - self.low) % self.step:
            raise ValueError(f"high - low ({self.high - self.low}) is not a multiple of step ({self.step})")
        return self

    def bounds(self) -> list[Scalar]:
        return [self.low, self.high]


class CategoricalDist(_Dist):
    """One of a list of values (numbers, strings, booleans or null)."""

    type: Literal["categorical"]
    choices: list[Scalar] = Field(min_length=2)

    @model_validator(mode="after")
    def _distinct(self) -> CategoricalDist:
        if len({json.dumps(c) for c in self.choices}) != len(self.choices):
            raise ValueError(f"choices must be distinct (got {self.choices})")
        return self

    def bounds(self) -> list[Scalar]:
        return list(self.choices)


Distribution = Annotated[FloatDist | LogFloatDist | IntDist | CategoricalDist, Field(discriminator="type")]


class MedianPruner(_Dist):
    """Stop a trial whose validation value at an epoch is below the median of earlier trials' at that
    epoch."""

    kind: Literal["median"]
    startup_trials: int = Field(
        default=3, ge=0, description="trials that run to the end before pruning starts"
    )
    warmup_epochs: int = Field(default=2, ge=0, description="epochs of each trial never pruned")


class HyperbandPruner(_Dist):
    """Successive halving in brackets over epochs (Li et al.); max_epochs defaults to train.epochs."""

    kind: Literal["hyperband"]
    min_epochs: int = Field(default=1, ge=1)
    max_epochs: int | None = Field(default=None, ge=1)
    reduction_factor: int = Field(default=3, ge=2)


class NoPruner(_Dist):
    kind: Literal["none"]


Pruner = Annotated[MedianPruner | HyperbandPruner | NoPruner, Field(discriminator="kind")]


class SamplerSpec(Section):
    seed: int = Field(
        default=0, description="seed of the TPE sampler (mixed with the worker index and the trials so far)"
    )
    startup_trials: int = Field(default=10, ge=1, description="random trials before TPE models the results")


class SearchSpace(Section):
    params: dict[str, Distribution] = Field(min_length=1)
    pruner: Pruner = MedianPruner(kind="median")
    sampler: SamplerSpec = SamplerSpec()

    def fingerprint(self) -> str:
        """Hash of what the sampler draws from (a study must keep one space)."""
        params = {k: v.model_dump(mode="json") for k, v in sorted(self.params.items())}
        return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()


class SpaceError(SpecError):
    """Problems in a search space file: (dotted key with line, message) pairs, like SpecError's."""

    def __init__(self, path: str, problems: list[tuple[str, str]], fix: str | None = None):
        self.problems = problems
        lines = "\n".join(f"  - {key}: {msg}" for key, msg in problems)
        UserError.__init__(self, f"{len(problems)} problem(s) in the search space\n{lines}", where=str(path),
                           fix=fix or SPACE_FIX)


def _unwrap_section(annotation) -> type[BaseModel] | None:
    """The Section class behind `X`, `X | None` or `Optional[X]`; None for a plain value field."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(inner) == 1:
            return _unwrap_section(inner[0])
    return None


def key_problem(dotted: str) -> str | None:
    """Why `dotted` cannot be searched, or None when it names a searchable spec field."""
    if dotted in FROZEN_KEYS:
        return f"cannot be searched: {FROZEN_KEYS[dotted]}"
    parts = dotted.split(".")
    if parts[0] in FROZEN_SECTIONS:
        return f"cannot be searched: {FROZEN_SECTIONS[parts[0]]}"
    model: type[BaseModel] = ExperimentSpec
    for i, part in enumerate(parts):
        field = model.model_fields.get(part)
        here = ".".join(parts[: i + 1])
        if field is None:
            known = ", ".join(sorted(model.model_fields))
            return f"unknown spec key {here!r}; {'.'.join(parts[:i]) or 'the spec'} has: {known}"
        section = _unwrap_section(field.annotation)
        last = i == len(parts) - 1
        if last and section is not None:
            return f"{here} is a section; name one of its keys ({', '.join(sorted(section.model_fields))})"
        if not last and section is None:
            return f"{here} is a value, not a section"
        if section is not None:
            model = section
    return None


def apply_params(raw: dict, params: dict[str, object]) -> dict:
    """A deep copy of the raw spec mapping with each dotted key set to its value."""
    out = copy.deepcopy(raw)
    for dotted, value in params.items():
        apply_override(out, dotted.split("."), value)
    return out


def _check_against_spec(space: SearchSpace, base_raw: dict, where: dict[str, str]) -> list[tuple[str, str]]:
    """Each bound/choice alone, set on the user's spec, must validate: a range the spec refuses is
    caught here, before any trial runs."""
    problems = []
    for key, dist in space.params.items():
        for value in dist.bounds():
            try:
                ExperimentSpec.model_validate(apply_params(base_raw, {key: value}))
            except ValidationError as exc:
                msgs = "; ".join(
                    f"{'.'.join(str(p) for p in e['loc']) or 'spec'}: {e['msg']}" for e in exc.errors()
                )
                problems.append((where[key], f"value {value!r} is refused by the spec ({msgs})"))
                break
    return problems


def load_space(path: str | Path, base_raw: dict | None = None) -> SearchSpace:
    """Read and validate a space file; with `base_raw` (the user's spec mapping after --set) also check
    every bound against the spec. All problems are reported at once, with line numbers."""
    path = Path(path)
    if not path.is_file():
        raise SpaceError(str(path), [("(file)", "search space file not found; pass --space, e.g. "
                                     "experiments/beauty/sweep_space.yaml")])
    text = path.read_text(encoding="utf-8")
    try:
        node = yaml.compose(text)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise SpaceError(str(path), [(f"line {mark.line + 1}" if mark else "(file)",
                                     f"not valid YAML: {getattr(exc, 'problem', exc)}")]) from exc
    if not isinstance(raw, dict):
        raise SpaceError(str(path), [("(top level)", "a search space is a mapping with a `params` section")])
    lines = _key_lines(node) if node is not None else {}

    def at(dotted: str) -> str:
        return f"{dotted} (line {lines[dotted]})" if dotted in lines else dotted

    problems: list[tuple[str, str]] = []
    params = raw.get("params")
    if isinstance(params, dict):
        for key in params:
            problem = key_problem(str(key))
            if problem:
                problems.append((at(f"params.{key}"), problem))
    try:
        space = SearchSpace.model_validate(raw)
    except ValidationError as exc:
        for err in exc.errors():
            loc = [str(p) for p in err["loc"]]
            # drop the union tag pydantic inserts (params.train.lr.log_float.low -> params.train.lr.low)
            if (
                len(loc) >= 3
                and loc[0] == "params"
                and loc[2] in ("float", "log_float", "int", "categorical")
            ):
                del loc[2]
            if len(loc) >= 2 and loc[0] == "pruner" and loc[1] in ("median", "hyperband", "none"):
                del loc[1]
            dotted = ".".join(loc)
            problems.append((at(dotted) if dotted in lines else at(".".join(loc[:2])), err["msg"]))
        raise SpaceError(str(path), problems) from exc
    if problems:
        raise SpaceError(str(path), problems)
    if base_raw is not None:
        bad = _check_against_spec(space, base_raw, {k: at(f"params.{k}") for k in space.params})
        if bad:
            raise SpaceError(str(path), bad)
    return space


SPACE_FIX = (
    "each params key is a dotted spec key (e.g. train.lr) mapped to {type: float|log_float|int, low, "
    "high} or {type: categorical, choices: [...]}; see docs/sweep.md"
)
