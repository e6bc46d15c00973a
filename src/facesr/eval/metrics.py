"""Image-quality, identity and distribution metrics, calibrated against reference implementations.

Every number facesr reports comes from one of the metrics registered here, so that a training run,
``facesr eval`` and a peer's outputs are all scored by the same code. Each metric carries a
one-line ``definition`` that is copied verbatim into the result JSON, so a table can always be
traced back to what was computed.

Conventions (see ``docs/evaluation.md``):

* images are RGB float tensors in [0, 1], ``N x 3 x H x W``; arithmetic is float64 so that the
  values agree with scikit-image to ~1e-12, not just to float32 noise;
* ``psnr`` / ``ssim`` work on RGB; ``ssim`` uses an 11x11 Gaussian window (sigma 1.5, taps as in
  :func:`scipy.ndimage.gaussian_filter`), K1 = 0.01, K2 = 0.03, population (not sample)
  covariance, per channel then averaged, and averages the SSIM map over the *valid* window
  positions only. That is exactly ``skimage.metrics.structural_similarity(gaussian_weights=True,
  sigma=1.5, use_sample_covariance=False, data_range=1, channel_axis=-1)``: scikit-image filters
  with reflect padding but then crops ``(win - 1) / 2`` pixels from every border, which leaves
  precisely the positions whose window lies inside the image. It is also BasicSR's convention
  (``cv2.filter2D`` then ``[5:-5, 5:-5]``);
* ``psnr_y`` / ``ssim_y`` use the luma Y of ITU-R BT.601 in studio range (16-235), computed the
  way BasicSR's ``rgb2ycbcr(y_only=True)`` does, then the same formulas with a data range of 1;
* ``identity`` is the cosine between face-recognition embeddings (the dlib face-recognition ResNet,
  face-api.js port, :mod:`facesr.nets.face_id`) of the restored face and the clean HR face;
* ``frd`` is the Frechet distance between two embedding distributions (FRD, *not* FID: the
  features are face-recognition features, not Inception's);
* ``verification`` turns genuine/impostor similarity scores into TAR at a fixed FAR and the EER.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from facesr.errors import FacesrError

#: BT.601 studio-range luma weights for RGB in [0, 255] (BasicSR ``rgb2ycbcr``, ``y_only=True``).
Y_WEIGHTS_RGB = (65.481, 128.553, 24.966)
Y_OFFSET = 16.0
#: Smallest MSE used in PSNR, so that identical images give 100 dB instead of infinity.
MSE_FLOOR = 1e-10


class MetricError(FacesrError):
    """A metric was asked for by an unknown name or given inputs it cannot score."""


# ---------------------------------------------------------------------------------------------
# building blocks
# ---------------------------------------------------------------------------------------------


def _check_pair(sr: torch.Tensor, hr: torch.Tensor) -> None:
    if sr.shape != hr.shape or sr.dim() != 4:
        raise MetricError(
            f"metric inputs must be two N x C x H x W tensors of the same shape, "
            f"got {tuple(sr.shape)} and {tuple(hr.shape)}"
        )


def rgb_to_y(img: torch.Tensor) -> torch.Tensor:
    """BT.601 studio-range luma of RGB in [0, 1], returned in [0, 1] (16/255 .. 235/255).

    Same arithmetic as BasicSR ``rgb2ycbcr(img, y_only=True)`` for float input: Y = (65.481 R +
    128.553 G + 24.966 B + 16) / 255 with R, G, B in [0, 1]. No rounding (BasicSR does not round).
    """
    if img.dim() != 4 or img.shape[1] != 3:
        raise MetricError(f"rgb_to_y needs N x 3 x H x W, got {tuple(img.shape)}")
    w = torch.tensor(Y_WEIGHTS_RGB, dtype=img.dtype, device=img.device).view(1, 3, 1, 1)
    return ((img * w).sum(1, keepdim=True) + Y_OFFSET) / 255.0


def gaussian_kernel1d(
    sigma: float = 1.5,
    truncate: float = 3.5,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Normalised 1-D Gaussian taps exactly as :func:`scipy.ndimage.gaussian_filter1d` builds them.

    With sigma 1.5 and truncate 3.5 (scikit-image's choice for ``gaussian_weights=True``) the
    radius is ``int(3.5 * 1.5 + 0.5) = 5``, i.e. the 11-tap window of Wang et al. (2004).
    """
    radius = int(truncate * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
    k = torch.exp(-0.5 * x * x / (sigma * sigma))
    return k / k.sum()


def _valid_filter_matrix(k: torch.Tensor, n: int) -> torch.Tensor:
    """``(n - len(k) + 1) x n`` matrix M with ``M @ v`` = the valid correlation of ``v`` with ``k``."""
    m = torch.zeros(n - k.numel() + 1, n, dtype=k.dtype, device=k.device)
    for i in range(m.shape[0]):
        m[i, i : i + k.numel()] = k
    return m


def psnr_per_image(sr: torch.Tensor, hr: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """PSNR in dB per image (MSE over all pixels and channels), float64, ``[N]``."""
    _check_pair(sr, hr)
    d = sr.double() - hr.double()
    mse = d.pow(2).flatten(1).mean(1).clamp_min(MSE_FLOOR * data_range**2)
    return 10.0 * torch.log10(data_range**2 / mse)


def ssim_per_image(
    sr: torch.Tensor,
    hr: torch.Tensor,
    data_range: float = 1.0,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
) -> torch.Tensor:
    """Mean SSIM per image (per channel, then averaged over channels), float64, ``[N]``.

    Separable Gaussian filtering with *valid* positions only; see the module docstring for why
    this equals scikit-image's reflect-then-crop result exactly.
    """
    _check_pair(sr, hr)
    x, y = sr.double(), hr.double()
    h, w = x.shape[-2:]
    k = gaussian_kernel1d(sigma, dtype=x.dtype, device=x.device)
    if h < k.numel() or w < k.numel():
        raise MetricError(f"SSIM needs images of at least {k.numel()}x{k.numel()}, got {h}x{w}")
    # A valid 1-D filter is a banded (H - r*2) x H matrix, so the separable blur is two batched
    # matmuls (fast BLAS in float64; float64 conv2d on CPU is ~50x slower).
    gh = _valid_filter_matrix(k, h)
    gw = gh if w == h else _valid_filter_matrix(k, w)

    def blur(t: torch.Tensor) -> torch.Tensor:
        return gh @ t @ gw.T

    ux, uy = blur(x), blur(y)
    vx = blur(x * x) - ux * ux
    vy = blur(y * y) - uy * uy
    vxy = blur(x * y) - ux * uy
    c1 = (k1 * data_range) ** 2
    c2 = (k2 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return s.mean(dim=(2, 3)).mean(dim=1)


def frechet_distance_from_stats(
    mu1: torch.Tensor, cov1: torch.Tensor, mu2: torch.Tensor, cov2: torch.Tensor
) -> float:
    """Frechet (2-Wasserstein) distance between N(mu1, cov1) and N(mu2, cov2).

    ``|mu1 - mu2|^2 + tr(C1) + tr(C2) - 2 tr((C1 C2)^(1/2))``. The trace of the matrix square
    root is computed from symmetric eigen-decompositions, ``tr((C1 C2)^(1/2)) = sum sqrt(eig(
    C1^(1/2) C2 C1^(1/2)))``, which is real and stable for PSD inputs (``scipy.linalg.sqrtm`` on
    the non-symmetric product can return complex noise). Everything in float64.
    """
    mu1, mu2 = mu1.double().flatten(), mu2.double().flatten()
    cov1, cov2 = cov1.double(), cov2.double()
    if mu1.shape != mu2.shape or cov1.shape != cov2.shape or cov1.shape != (mu1.numel(), mu1.numel()):
        raise MetricError("Frechet distance: mean/covariance shapes do not match")
    cov1 = 0.5 * (cov1 + cov1.T)
    cov2 = 0.5 * (cov2 + cov2.T)
    evals1, evecs1 = torch.linalg.eigh(cov1)
    sqrt1 = (evecs1 * evals1.clamp_min(0).sqrt()) @ evecs1.T
    middle = sqrt1 @ cov2 @ sqrt1
    tr_covmean = torch.linalg.eigvalsh(0.5 * (middle + middle.T)).clamp_min(0).sqrt().sum()
    diff = mu1 - mu2
    value = diff @ diff + torch.trace(cov1) + torch.trace(cov2) - 2.0 * tr_covmean
    return float(value.clamp_min(0.0))


def embedding_stats(feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and unbiased covariance (``np.cov`` convention, ddof = 1) of ``[N, D]`` features."""
    f = feats.double()
    if f.dim() != 2 or f.shape[0] < 2:
        raise MetricError(f"need at least 2 feature vectors [N, D], got {tuple(f.shape)}")
    mu = f.mean(0)
    centred = f - mu
    return mu, centred.T @ centred / (f.shape[0] - 1)


def tar_at_far(genuine: torch.Tensor, impostor: torch.Tensor, far: float = 0.01) -> float:
    """True-accept rate at the strictest threshold whose false-accept rate is at most ``far``.

    A pair is accepted when its score is ``>= t``. Let ``k = floor(far * n_impostor)``; the best
    admissible threshold lies just above the (k+1)-th largest impostor score ``s``, so the result
    is ``mean(genuine > s)``. Ties at ``s`` are rejected, because accepting them would push the
    false-accept count above ``k``.
    """
    g, i = genuine.double().flatten(), impostor.double().flatten()
    if g.numel() == 0 or i.numel() == 0:
        raise MetricError("verification needs at least one genuine and one impostor score")
    k = math.floor(far * i.numel() + 1e-9)
    if k >= i.numel():
        return 1.0
    s = torch.sort(i, descending=True).values[k]
    return float((g > s).double().mean())


def equal_error_rate(genuine: torch.Tensor, impostor: torch.Tensor) -> tuple[float, float]:
    """Equal error rate and its threshold: ``(EER, t)``.

    FAR(t) = mean(impostor >= t) and FRR(t) = mean(genuine < t) are evaluated at every observed
    score; at the threshold where ``|FAR - FRR|`` is smallest the EER is ``(FAR + FRR) / 2``
    (ties: the lowest such threshold). With finite samples this is the usual ROC-convex-free
    estimate and is exact when the two curves cross at an observed score.
    """
    g, i = genuine.double().flatten(), impostor.double().flatten()
    if g.numel() == 0 or i.numel() == 0:
        raise MetricError("verification needs at least one genuine and one impostor score")
    t = torch.unique(torch.cat([g, i]))  # sorted ascending
    gs, _ = torch.sort(g)
    isorted, _ = torch.sort(i)
    frr = torch.searchsorted(gs, t, right=False).double() / g.numel()  # count(g < t)
    far = 1.0 - torch.searchsorted(isorted, t, right=False).double() / i.numel()  # count(i >= t)
    gap = (far - frr).abs()
    j = int(torch.argmin(gap))
    return float((far[j] + frr[j]) / 2), float(t[j])


# ---------------------------------------------------------------------------------------------
# registry
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricInfo:
    """What a metric is, in words that go into every result file."""

    name: str
    label: str
    unit: str
    higher_is_better: bool
    definition: str
    kind: str  # "pair" (per image, restored vs HR), "set" (two sets of embeddings), "verification"


class PairMetric:
    """Per-image metric of restored vs ground truth: ``metric(sr, hr) -> float64 [N]``."""

    def __init__(self, info: MetricInfo, fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
        self.info = info
        self._fn = fn

    @property
    def name(self) -> str:
        return self.info.name

    def __call__(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self._fn(sr, hr)


class IdentityMetric(PairMetric):
    """Cosine similarity of face-recognition embeddings (restored vs clean HR), per image.

    The network is loaded lazily so that listing metrics never needs its weights. ``embed`` is
    public so the runner can compute each embedding once and reuse it for FRD and verification.
    """

    def __init__(self, info: MetricInfo, device: str | torch.device = "cpu", net: Any = None) -> None:
        super().__init__(info, self._cosine_images)
        self.device = torch.device(device)
        self._net = net

    @property
    def net(self) -> Any:
        if self._net is None:
            from facesr.nets.face_id import load_face_id

            self._net = load_face_id(self.device)
        return self._net

    def embed(self, img01: torch.Tensor) -> torch.Tensor:
        """Unit-length 128-d embeddings of template-aligned 128x128 faces (float32 on CPU)."""
        with torch.no_grad():
            e = self.net.embed(img01.to(self.device, torch.float32))
        return F.normalize(e.float(), dim=1).cpu()

    @staticmethod
    def cosine(e_sr: torch.Tensor, e_hr: torch.Tensor) -> torch.Tensor:
        """Row-wise cosine between two ``[N, D]`` embedding batches, float64."""
        return (F.normalize(e_sr.double(), dim=1) * F.normalize(e_hr.double(), dim=1)).sum(1)

    def _cosine_images(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        _check_pair(sr, hr)
        return self.cosine(self.embed(sr), self.embed(hr))


class FRDMetric:
    """Frechet distance between two sets of face-recognition embeddings ``[N, D]`` (FRD)."""

    def __init__(self, info: MetricInfo) -> None:
        self.info = info

    @property
    def name(self) -> str:
        return self.info.name

    def __call__(self, feats_a: torch.Tensor, feats_b: torch.Tensor) -> float:
        mu1, c1 = embedding_stats(feats_a)
        mu2, c2 = embedding_stats(feats_b)
        return frechet_distance_from_stats(mu1, c1, mu2, c2)


class VerificationMetric:
    """TAR at a fixed FAR and EER from genuine and impostor similarity scores."""

    def __init__(self, info: MetricInfo, far: float = 0.01) -> None:
        if not 0.0 < far < 1.0:
            raise MetricError(f"verification FAR must be in (0, 1), got {far}")
        self.info = info
        self.far = far

    @property
    def name(self) -> str:
        return self.info.name

    def __call__(self, genuine: torch.Tensor, impostor: torch.Tensor) -> dict[str, float]:
        eer, thr = equal_error_rate(genuine, impostor)
        return {
            "tar_at_far": tar_at_far(genuine, impostor, self.far),
            "far": self.far,
            "eer": eer,
            "eer_threshold": thr,
            "n_genuine": int(genuine.numel()),
            "n_impostor": int(impostor.numel()),
        }


_SSIM_DEF = (
    "mean SSIM, 11x11 Gaussian window (sigma 1.5), K1=0.01, K2=0.03, population covariance, "
    "valid window positions only, per channel then averaged; data range 1 "
    "(= skimage structural_similarity(gaussian_weights=True, sigma=1.5, "
    "use_sample_covariance=False, data_range=1))"
)
_Y_DEF = "luma Y = (65.481 R + 128.553 G + 24.966 B + 16) / 255 (BT.601 studio range, BasicSR rgb2ycbcr)"

INFOS: dict[str, MetricInfo] = {
    "psnr": MetricInfo(
        "psnr",
        "PSNR (RGB)",
        "dB",
        True,
        "10 log10(1 / MSE), MSE over all pixels and RGB channels in [0,1], per image then "
        "averaged over images; MSE floored at 1e-10 (100 dB)",
        "pair",
    ),
    "ssim": MetricInfo("ssim", "SSIM (RGB)", "", True, _SSIM_DEF + " on RGB", "pair"),
    "psnr_y": MetricInfo(
        "psnr_y", "PSNR (Y, BasicSR)", "dB", True, "PSNR as above on the " + _Y_DEF + ", data range 1", "pair"
    ),
    "ssim_y": MetricInfo("ssim_y", "SSIM (Y, BasicSR)", "", True, _SSIM_DEF + " on the " + _Y_DEF, "pair"),
    "psnr_mask_in": MetricInfo(
        "psnr_mask_in",
        "PSNR inside the mask (RGB)",
        "dB",
        True,
        "PSNR as above over the pixels where the benchmark's synthetic mask covers > 50 % (the hidden "
        "nose and mouth), per image, averaged over images with a non-empty region",
        "pair",
    ),
    "psnr_mask_out": MetricInfo(
        "psnr_mask_out",
        "PSNR outside the mask (RGB)",
        "dB",
        True,
        "PSNR as above over the pixels the benchmark's synthetic mask leaves visible",
        "pair",
    ),
    "identity": MetricInfo(
        "identity",
        "identity cosine",
        "",
        True,
        "cosine between 128-d embeddings of the dlib face-recognition ResNet "
        "(face-api.js port, facesr.nets.face_id) of the restored face and the clean HR "
        "face, both template-aligned 128x128",
        "pair",
    ),
    "frd": MetricInfo(
        "frd",
        "FRD",
        "",
        False,
        "Frechet distance between Gaussians fitted (mean, unbiased covariance) to the "
        "face-recognition embeddings of all restored faces and all clean HR faces "
        "(FRD; not FID, no Inception features)",
        "set",
    ),
    "verification": MetricInfo(
        "verification",
        "verification",
        "",
        True,
        "cosine scores of fixed genuine/impostor pairs (probe = restored face i, "
        "gallery = clean HR face j); TAR at FAR <= 1% (accept if score >= t, "
        "strictest admissible t) and EER (FAR = mean(impostor >= t), FRR = "
        "mean(genuine < t), at the observed t minimising |FAR - FRR|)",
        "verification",
    ),
}

_FACTORIES: dict[str, Callable[..., Any]] = {
    "psnr": lambda **kw: PairMetric(INFOS["psnr"], psnr_per_image),
    "ssim": lambda **kw: PairMetric(INFOS["ssim"], ssim_per_image),
    "psnr_y": lambda **kw: PairMetric(
        INFOS["psnr_y"], lambda a, b: psnr_per_image(rgb_to_y(a.double()), rgb_to_y(b.double()))
    ),
    "ssim_y": lambda **kw: PairMetric(
        INFOS["ssim_y"], lambda a, b: ssim_per_image(rgb_to_y(a.double()), rgb_to_y(b.double()))
    ),
    "identity": lambda **kw: IdentityMetric(INFOS["identity"], **kw),
    "frd": lambda **kw: FRDMetric(INFOS["frd"]),
    "verification": lambda **kw: VerificationMetric(INFOS["verification"], **kw),
}


def list_metrics() -> list[str]:
    """Names accepted by :func:`create_metric`, in the order tables print them."""
    return list(_FACTORIES)


def create_metric(name: str, **kwargs: Any) -> Any:
    """Build a metric by name (``psnr``, ``ssim``, ``psnr_y``, ``ssim_y``, ``identity``, ``frd``,
    ``verification``). ``identity`` accepts ``device=``; ``verification`` accepts ``far=``."""
    if name not in _FACTORIES:
        raise MetricError(f"unknown metric {name!r}; known: {', '.join(_FACTORIES)}")
    return _FACTORIES[name](**kwargs)
