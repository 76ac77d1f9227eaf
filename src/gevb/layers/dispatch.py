"""Which implementation each fast path takes, chosen here by device and dtype, in one place.

Every trick below was measured on the CPU (BENCHMARKS.md, docs/design.md "Efficiency") and is taken
only there; elsewhere (CUDA) the layers take their reference paths, which are cuBLAS / cuDNN calls,
until a measurement on a GPU (benchmarks/gpu_check.sh) says another variant is faster there. The
tests hold every fast path equal to its reference on every device present: ``reference_paths()`` turns
every fast path off for a block, and ``choices()`` counts which path each call took, so a test knows
which one ran.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import torch

# Row GEMMs pay once a kernel row holds enough values: with only a few (kw*C = 3 or 15, the
# conventional first layers) the GEMMs are too thin and patches win; from kw*C = 64 on row GEMMs
# win (docs/design.md, "Efficiency"; measured on the CPU). Both paths are tested against the reference.
ROW_GEMM_MIN_INNER = 32

# A first convolution with thin filters (C_in*kh*kw below this, MNIST's 9) runs as one GEMM over unfolded
# patches: oneDNN's direct convolution writes its K*out + out output maps slower than the GEMM does (29-40
# against 22-26 ms at MNIST conv-vec's first layer); with CIFAR-10's 75 the convolution wins (166 against 180).
CONV_GEMM_MAX_INNER = 32

_fast_paths = [True]  # the innermost setting last (``reference_paths``)
_recorders: list[Counter] = []  # open ``choices()`` blocks


@contextmanager
def reference_paths() -> Iterator[None]:
    """Every layer takes its reference path inside the block (the fast paths off: tests, spread measurements)."""
    _fast_paths.append(False)
    try:
        yield
    finally:
        _fast_paths.pop()


@contextmanager
def choices() -> Iterator[Counter]:
    """Count the path every dispatched call takes inside the block: ``{(path, fast): calls}``, path one of
    ``onednn_gemm``, ``strided_sum_pooling``, ``row_gemms``, ``conv_gemm``, ``tap_sums``."""
    counter: Counter = Counter()
    _recorders.append(counter)
    try:
        yield counter
    finally:
        _recorders.remove(counter)


def _chosen(path: str, fast: bool) -> bool:
    """The fast path where it applies and fast paths are on; the choice is counted for open ``choices()``."""
    fast = fast and _fast_paths[-1]
    for counter in _recorders:
        counter[path, fast] += 1
    return fast


@functools.cache
def onednn_matmul() -> bool:
    """Whether this torch has oneDNN's fp32 GEMM (``mkldnn._linear_pointwise``) and it agrees with matmul.

    Probed on first use, once per process (not at import: importing gevb allocates nothing), on fixed
    values: a draw would move torch's global RNG, and so a user's random numbers, by whether the probe ran.
    """
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        a, w = torch.arange(15.0).view(3, 5).sin(), torch.arange(20.0).view(4, 5).cos()
        out = torch.ops.mkldnn._linear_pointwise(a, w, None, "none", [], "")
        return torch.allclose(out, a @ w.t(), atol=1e-5)
    except (AttributeError, RuntimeError, NotImplementedError):
        return False


def recording(*tensors: torch.Tensor) -> bool:
    """Whether autograd records an op on these tensors (fast paths without a backward must not run then)."""
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def autocasting(a: torch.Tensor) -> bool:
    """Whether an autocast region (``--precision bf16``) is open for ``a``'s device: the fast paths below
    call ops autocast does not cast (oneDNN's GEMM, in-place ``baddbmm_``), so they stand aside."""
    return torch.is_autocast_enabled(a.device.type)


def use_onednn_gemm(a: torch.Tensor, w: torch.Tensor) -> bool:
    """``a @ w.T`` by oneDNN: CPU, float32, no autograd (it uses AVX-512 where MKL's GEMM does not)."""
    cpu_fp32 = a.device.type == "cpu" and a.dtype == w.dtype == torch.float32
    return _chosen("onednn_gemm", cpu_fp32 and not recording(a, w) and not autocasting(a) and onednn_matmul())


def use_strided_sum_pooling(a: torch.Tensor) -> bool:
    """Average pooling as strided-view sums (beats ``F.avg_pool2d``'s general CPU kernel): CPU only."""
    return _chosen("strided_sum_pooling", a.device.type == "cpu")


def use_row_gemms(a: torch.Tensor, weight: torch.Tensor, kernel_width: int, channels: int) -> bool:
    """An inner locally connected layer by strided-window GEMMs per output row: CPU, no autograd, and
    kernel rows of at least ``ROW_GEMM_MIN_INNER`` values (hundreds of small GEMMs would not pay on a GPU)."""
    wide = kernel_width * channels >= ROW_GEMM_MIN_INNER
    return _chosen("row_gemms", a.device.type == "cpu" and wide and not recording(a, weight) and not autocasting(a))


def use_conv_gemm(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """A convolution as one GEMM over unfolded patches: CPU and thin filters (``CONV_GEMM_MAX_INNER``)."""
    thin = weight[0].numel() < CONV_GEMM_MAX_INNER
    return _chosen("conv_gemm", x.device.type == "cpu" and thin)


def use_tap_sums(c: torch.Tensor) -> bool:
    """A locally connected layer's input credit as kh*kw strided additions (beats ``F.fold``'s transposing
    copy and ``col2im`` on the CPU): CPU only."""
    return _chosen("tap_sums", c.device.type == "cpu")
