"""Perceptual (feature L1) and style (Gram-matrix) losses with a pluggable feature extractor (papers.md 1.4).

[PAPER figure] perceptual loss on the denoised LR and the SR output, style loss on the denoised LR.
[UNSTATED -> PROPOSAL] the formulas (FCSR-GAN / PConv): perceptual = sum_j mean |phi_j(a) - phi_j(b)|,
style = sum_j mean |G_j(a) - G_j(b)| with G_j the Gram matrix normalised by C_j H_j W_j.

The paper used ImageNet VGG-16 features; no registry ships those weights, so the default extractor is
**face-recognition features**: intermediate maps (conv32_3, conv64_3, conv128_2) of the frozen dlib
face-recognition ResNet (facesr.nets.face_id). ``imagenet_vgg16`` (relu1_2, relu2_2, relu3_3) is
available when the user supplies the weights as safetensors with torchvision's key names
(``features.0.weight`` ... ``features.14.bias``). LR images are bilinearly up-sampled to 128x128 before
either extractor (PROPOSAL: features of 16/32 px inputs are too small to be useful).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from facesr.errors import ModelError

FeatureName = Literal["face_recognition", "imagenet_vgg16"]
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _to_128(img: torch.Tensor) -> torch.Tensor:
    if img.shape[-2:] == (128, 128):
        return img
    return F.interpolate(img, size=(128, 128), mode="bilinear", align_corners=False)


class FaceRecognitionFeatures(nn.Module):
    """Face-recognition features: dlib ResNet maps conv32_3, conv64_3, conv128_2 of the aligned face."""

    def __init__(self, face_id: nn.Module | None = None) -> None:
        super().__init__()
        if face_id is None:
            from facesr.nets.face_id import load_face_id

            face_id = load_face_id()
        self.face_id = face_id

    def forward(self, img01: torch.Tensor) -> list[torch.Tensor]:
        return self.face_id.features(_to_128(img01))


class ImageNetVGG16Features(nn.Module):
    """VGG-16 conv1_1..conv3_3 with ReLUs; returns relu1_2, relu2_2, relu3_3. Weights from the user.

    No hash is known for these weights: facesr ships none and records none (the user converts a VGG-16
    of their choice to safetensors, so no one file is "the" VGG-16; torchvision's hash is that of its
    pickle, not of a conversion). So the file is hash-checked only if the user puts a ``<file>.sha256``
    sidecar next to it (:func:`facesr.zoo.verify_known_sha256`); otherwise only its keys and shapes are
    checked.
    """

    # torchvision indices of the convs up to relu3_3 in ``vgg16().features``
    _CONVS = (
        (0, 3, 64),
        (2, 64, 64),
        (5, 64, 128),
        (7, 128, 128),
        (10, 128, 256),
        (12, 256, 256),
        (14, 256, 256),
    )
    _TAPS = (3, 8, 15)  # layer indices after relu1_2, relu2_2, relu3_3

    def __init__(self, weights: str | Path | None) -> None:
        super().__init__()
        if weights is None:
            raise ModelError(
                "perceptual features 'imagenet_vgg16' need a weights file (safetensors with "
                "torchvision keys features.0.weight ... features.14.bias); none is bundled, "
                "use 'face_recognition' features or pass the path"
            )
        path = Path(weights).expanduser()
        if not path.is_file():
            raise ModelError(f"VGG-16 weights file {str(path)!r} not found")
        from facesr.zoo import verify_known_sha256

        verify_known_sha256(path)  # a <file>.sha256 sidecar, if the user wrote one
        layers: list[nn.Module] = []
        for idx in range(16):
            conv = next((c for c in self._CONVS if c[0] == idx), None)
            if conv is not None:
                layers.append(nn.Conv2d(conv[1], conv[2], 3, padding=1))
            elif idx in (4, 9):
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers.append(nn.ReLU(inplace=False))
        self.features = nn.Sequential(*layers)
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            state = load_file(str(path))
        except (SafetensorError, OSError) as exc:
            raise ModelError(f"{path}: not a readable safetensors file ({exc})") from None
        wanted = {f"features.{i}.{k}" for i, *_ in self._CONVS for k in ("weight", "bias")}
        missing = sorted(wanted - set(state))
        if missing:
            raise ModelError(f"{path}: not VGG-16 weights with torchvision keys (missing {missing[:2]})")
        own = {k[len("features.") :]: v for k, v in state.items() if k in wanted}
        try:
            self.features.load_state_dict(own)
        except RuntimeError:
            raise ModelError(f"{path}: tensor shapes do not match VGG-16") from None
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.eval().requires_grad_(False)

    def train(self, mode: bool = True) -> ImageNetVGG16Features:  # frozen: ignore mode
        return super().train(False)

    def forward(self, img01: torch.Tensor) -> list[torch.Tensor]:
        x = (_to_128(img01) - self.mean) / self.std
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self._TAPS:
                out.append(x)
        return out


def build_feature_extractor(
    name: FeatureName = "face_recognition",
    weights: str | Path | None = None,
    face_id: nn.Module | None = None,
) -> nn.Module:
    """The perceptual/style feature extractor by name (``face_recognition`` or ``imagenet_vgg16``)."""
    if name == "face_recognition":
        return FaceRecognitionFeatures(face_id)
    if name == "imagenet_vgg16":
        return ImageNetVGG16Features(weights)
    raise ModelError(f"unknown perceptual features {name!r}; choose face_recognition or imagenet_vgg16")


def perceptual_loss(feats_pred: list[torch.Tensor], feats_target: list[torch.Tensor]) -> torch.Tensor:
    """sum_j mean |phi_j(pred) - phi_j(target)| over matching feature maps."""
    return sum(
        (F.l1_loss(a, b) for a, b in zip(feats_pred, feats_target, strict=True)),
        start=feats_pred[0].new_zeros(()),
    )


def gram(feat: torch.Tensor) -> torch.Tensor:
    """Gram matrix ``[B, C, C]`` of ``[B, C, H, W]`` features, normalised by C * H * W."""
    b, c, h, w = feat.shape
    f = feat.reshape(b, c, h * w)
    return f @ f.transpose(1, 2) / (c * h * w)


def style_loss(feats_pred: list[torch.Tensor], feats_target: list[torch.Tensor]) -> torch.Tensor:
    """sum_j mean |G_j(pred) - G_j(target)| over matching feature maps."""
    return sum(
        (F.l1_loss(gram(a), gram(b)) for a, b in zip(feats_pred, feats_target, strict=True)),
        start=feats_pred[0].new_zeros(()),
    )
