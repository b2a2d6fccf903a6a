"""Profiles (sizes) and the section registry of the benchmark suite."""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

import torch

from conserve_verified.errors import InvalidArgument

from . import (
    compiled_forms,
    hypothesis_rate,
    operator_ratios,
    paired_ratios,
    pipeline_overhead,
    proof_times,
    propagation_speed,
)
from ._timing import load_average, set_threads

__all__ = ["PROFILES", "SECTIONS", "Profile", "run"]


@dataclass(frozen=True)
class Profile:
    """Sizes of one benchmark run.

    Attributes:
        name: ``"tiny"`` (test suite, seconds), ``"quick"`` or ``"full"``.
        threads: torch intra-op threads.
        min_run_time: seconds of timing per candidate (``blocked_autorange``).
        rounds: interleaved rounds over the candidates; the fastest round's
            median is kept (interference from other processes only adds time).
        batch: operator batch size; ``features``: operator feature sizes.
        dtypes: operator dtypes (names of ``torch`` dtypes).
        mlp: ``(batch, width)`` of the 4-stage MLP.
        resnet: ``(batch, base_width, image_size)`` of the ResNet-18.
        max_theorems: theorems timed (``None``: all registered).
        proof_timeout_s: solver timeout per claim.
        propagation: ``(inputs, width, depth, samples)`` of the predictor benchmark.
        hypothesis_examples: examples per property test.
        compile_backend: ``torch.compile`` backend of the compiled rows (``"inductor"``;
            ``"aot_eager"`` in the tiny profile: the same trace without a C++ build).
        pairs: back-to-back repetitions of each paired comparison.
        pair_run_time: seconds of ``blocked_autorange`` per candidate and pair.
        cuda_batch, cuda_features: the operator section's sizes on a CUDA device
            (a GPU's copy bandwidth needs larger tensors than a CPU's).
        devices: the operator section's devices: ``None`` for the CPU and, when
            present, CUDA; a tuple of ``"cpu"`` / ``"cuda"`` for exactly those
            (each must be present).
    """

    name: str
    threads: int
    min_run_time: float
    rounds: int
    batch: int
    features: tuple[int, ...]
    dtypes: tuple[str, ...]
    mlp: tuple[int, int]
    resnet: tuple[int, int, int]
    max_theorems: int | None
    proof_timeout_s: float
    propagation: tuple[int, int, int, int]
    hypothesis_examples: int
    compile_backend: str = "inductor"
    pairs: int = 13
    pair_run_time: float = 0.05
    cuda_batch: int = 16384
    cuda_features: tuple[int, ...] = (4096, 8192)
    devices: tuple[str, ...] | None = None

    def dtype_objects(self) -> list[torch.dtype]:
        return [getattr(torch, d) for d in self.dtypes]


PROFILES: dict[str, Profile] = {
    "tiny": Profile(
        name="tiny",
        threads=1,
        min_run_time=0.001,
        rounds=1,
        batch=8,
        features=(16,),
        dtypes=("float32", "bfloat16"),
        mlp=(4, 8),
        resnet=(2, 2, 8),
        max_theorems=1,
        proof_timeout_s=20.0,
        propagation=(2, 4, 3, 16),
        hypothesis_examples=2,
        compile_backend="aot_eager",
        pairs=2,
        pair_run_time=0.001,
        cuda_batch=8,
        cuda_features=(16,),
    ),
    "quick": Profile(
        name="quick",
        threads=2,
        min_run_time=0.3,
        rounds=2,
        batch=4096,
        features=(256, 1024, 4096, 8192),
        dtypes=("float32", "bfloat16"),
        mlp=(1024, 512),
        resnet=(8, 64, 32),
        max_theorems=None,
        proof_timeout_s=20.0,
        propagation=(20, 64, 4, 10_000),
        hypothesis_examples=50,
    ),
    "full": Profile(
        name="full",
        threads=2,
        min_run_time=1.0,
        rounds=3,
        batch=4096,
        features=(256, 512, 1024, 2048, 4096, 8192),
        dtypes=("float32", "bfloat16"),
        mlp=(1024, 1024),
        resnet=(32, 64, 32),
        max_theorems=None,
        proof_timeout_s=20.0,
        propagation=(8, 128, 6, 10_000),
        hypothesis_examples=200,
        pairs=25,
        pair_run_time=0.1,
    ),
}

#: Section name -> function ``(profile) -> JSON-serialisable dict``.
SECTIONS: dict[str, Callable[[Profile], dict[str, Any]]] = {
    "operator": operator_ratios.run,
    "pipeline": pipeline_overhead.run,
    "paired": paired_ratios.run,
    "compiled_forms": compiled_forms.run,
    "proofs": proof_times.run,
    "propagation": propagation_speed.run,
    "hypothesis": hypothesis_rate.run,
}


def run(
    profile: str | Profile = "quick",
    sections: Iterable[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the named ``sections`` (default: all) under ``profile``; returns the results.

    The result holds the profile, the machine (CPU, torch version, threads, load
    average before and after) and one entry per section.
    """
    prof = PROFILES.get(profile) if isinstance(profile, str) else profile
    if not isinstance(prof, Profile):
        raise InvalidArgument("profile", profile, f"unknown profile; valid: {sorted(PROFILES)}")
    names = list(SECTIONS) if sections is None else list(sections)
    unknown = [n for n in names if n not in SECTIONS]
    if unknown:
        raise InvalidArgument("sections", unknown, f"unknown sections; valid: {list(SECTIONS)}")
    previous = set_threads(prof.threads)
    try:
        out: dict[str, Any] = {
            "profile": asdict(prof),
            "machine": {
                "processor": platform.processor() or platform.machine(),
                "python": platform.python_version(),
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
                "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
                "load_average_before": load_average(),
            },
            "sections": {},
        }
        for name in names:
            if progress is not None:
                progress(name)
            start = time.perf_counter()
            result = SECTIONS[name](prof)
            result["section_seconds"] = time.perf_counter() - start
            out["sections"][name] = result
        out["machine"]["load_average_after"] = load_average()
        return out
    finally:
        set_threads(previous)
