"""The benchmark names ``facesr eval`` knows, defined once.

Standard library only, so that the command line (:mod:`facesr.commands.eval`) can offer them as
choices at import time without loading numpy or torch; the runners (:mod:`facesr.eval.runner`,
:mod:`facesr.eval.genuine`), the tables and the report import them from here.
"""

from __future__ import annotations

#: Frozen JDSR benchmarks: name -> (frozen set folder under the benchmarks root, scale). The x4 and x8
#: CelebA-10k benchmarks share one folder (and its HR faces).
FROZEN_BENCHMARKS: dict[str, tuple[str, int]] = {
    "utk-mask-x2": ("utk-mask-x2", 2),
    "utk-mask-x4": ("utk-mask-x4", 4),
    "utk-mask-x8": ("utk-mask-x8", 8),
    "celeba10k-x4": ("celeba10k", 4),
    "celeba10k-x8": ("celeba10k", 8),
}
#: Characteristic Regularisation benchmarks (16x16 -> 64x64, no frozen folder; facesr.eval.genuine).
CR_BENCHMARKS = ("genuine-lr", "genuine-lr-val", "utk-art-x4")
#: Every name ``facesr eval --benchmark`` accepts, in the order its help lists them.
BENCHMARK_NAMES = (*FROZEN_BENCHMARKS, *CR_BENCHMARKS)
