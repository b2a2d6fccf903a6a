"""``conserve-verified build-native``: compile the optional native CPU kernel.

The kernel (:mod:`conserve_verified._native`) makes the float32/bfloat16
one-pass forward in one read of each row from memory.  The build needs a C++
compiler and ninja, takes about a minute on two cores and is kept in the build
directory (keyed by the source, torch, Python and the flags), so a second run
returns at once.  Without it the operator uses torch's kernels: the same
tolerance table, proved for both.  ``--prune`` deletes the builds of other sources,
torch versions or flags from the build cache.  Exit status: 0 when the kernel is built and
loads, 1 when it cannot be built here (the reason is printed).
"""

from __future__ import annotations

import argparse
import time

from .. import _native

NAME = "build-native"
HELP = "compile the optional native CPU kernel of the one-pass forward (about a minute)"

__all__ = ["HELP", "NAME", "configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--check", action="store_true", help="only report whether the kernel is built and in use"
    )
    parser.add_argument("--verbose", action="store_true", help="show the compiler's output")
    parser.add_argument(
        "--prune",
        action="store_true",
        help="delete the other builds in the build cache (other sources, torch versions, "
        "flags); the current one is kept",
    )


def _prune() -> None:
    gone = _native.prune()
    if gone:
        print(
            f"native kernel: removed {len(gone)} other build(s): {', '.join(d.name for d in gone)}"
        )
    else:
        print("native kernel: no other builds to remove")


def run(args: argparse.Namespace) -> int:
    if args.prune:
        _prune()
    if args.check:
        st = _native.status()
        print(f"native kernel: {st['reason']} ({st['path']})")
        return 0 if st["active"] else 1
    if _native.kernel() is not None:
        print(f"native kernel: built ({_native.build_dir()})")
        return 0
    t0 = time.perf_counter()
    try:
        _native.build(verbose=args.verbose)
    except (RuntimeError, OSError, ImportError) as exc:  # no compiler / ninja, or a failed build
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"native kernel: not built ({first}); the operator uses torch's kernels")
        return 1
    took = time.perf_counter() - t0
    print(f"native kernel: built in {took:.0f} s ({_native.build_dir()}, flags {_native.flags()})")
    return 0
