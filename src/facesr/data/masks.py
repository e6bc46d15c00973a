"""Synthetic face masks: MaskTheFace templates warped onto 68 landmarks, batched in torch.

PAPER (JDSR-GAN, via J3): masks are added artificially on the lower face using facial key points.
PROPOSAL (ours, papers.md section 1.6): the templates, colours and textures of MaskTheFace
(``<data>/masktheface/masks``, MIT) and this anchor matching.

How: every template in ``masks.cfg`` has six anchors ``a..f`` (upper-left, top-centre at the
nose bridge, upper-right, lower-left, bottom-centre at the chin, lower-right). We match them to
dlib-68 points of the face (see :data:`ANCHOR_LANDMARKS`), solve one 3x3 homography per face
(least squares over the six pairs, normalised DLT) and sample the premultiplied RGBA template
(and the texture) with bilinear ``grid_sample``, all batched on the images' device. The
template *view* follows the head yaw estimated from the landmarks: frontal templates for frontal
faces, ``_left``/``_right`` ones when the nose tip is far off the jaw's midline. Colour and
texture (blended in template space, so they follow the warp) are drawn per sample.

Why torch: the training loop masks a fresh random template per sample inside each step, on the
GPU when there is one. Templates and textures are decoded once, at a fixed resolution (128 px on
the long side: about the mask's size in the 128 px face, so bilinear sampling does not alias).

Determinism: every random number comes from the ``torch.Generator`` passed in, in a fixed order,
so one seed gives the same masks on CPU and GPU (up to float rounding of the warp).
"""

from __future__ import annotations

import configparser
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from facesr.errors import DataError

#: For each anchor a..f, the dlib-68 indices whose mean it is matched to.
#: a/c: jaw points at about nose-tip height; b: nose bridge (mid); d/f: jaw at lower-lip height;
#: e: chin. Same idea as MaskTheFace's line intersections, read directly off the 68 points.
ANCHOR_LANDMARKS: tuple[tuple[int, ...], ...] = ((1, 2), (28,), (14, 15), (4,), (8,), (12,))
#: Yaw ratio (nose tip x between the jaw ends, 0..1) below/above which the side views are used.
YAW_LEFT, YAW_RIGHT = 0.38, 0.62
VIEWS = ("front", "left", "right")
#: Templates left out by default: with the anchors matched to dlib-68 points, the side views of the
#: half-face respirator ride up over the eyes on most turned faces (seen on the contact sheet; the
#: eye clearance then cuts a visible hole). The frontal ``gas`` template is kept.
EXCLUDED_TEMPLATES = ("gas_left", "gas_right")


@dataclass(frozen=True)
class MaskTemplate:
    """One MaskTheFace template: RGBA pixels, its six anchors (x, y) and its view."""

    name: str
    rgba: np.ndarray
    anchors: np.ndarray
    view: str


def masktheface_dir(data: str | Path) -> Path:
    """``<data>/masktheface`` (the folder whose ``masks/masks.cfg`` paths are relative to)."""
    root = Path(data) / "masktheface"
    if not (root / "masks" / "masks.cfg").is_file():
        raise DataError(f"MaskTheFace templates not found at {str(root / 'masks' / 'masks.cfg')!r}")
    return root


def load_templates(data: str | Path) -> list[MaskTemplate]:
    """Parse ``masks.cfg``; skip the empty/inpaint sections and templates whose file is missing."""
    root = masktheface_dir(data)
    cfg = configparser.ConfigParser()
    cfg.read(root / "masks" / "masks.cfg")
    out = []
    for name in cfg.sections():
        sec = cfg[name]
        if "template" not in sec or not all(f"mask_{k}" in sec for k in "abcdef"):
            continue
        path = root / sec["template"].strip()
        if not path.is_file():
            continue
        with Image.open(path) as im:
            rgba = np.asarray(im.convert("RGBA"))
        anchors = np.array([[float(v) for v in sec[f"mask_{k}"].split(",")] for k in "abcdef"])
        view = "left" if name.endswith("_left") else "right" if name.endswith("_right") else "front"
        out.append(MaskTemplate(name=name, rgba=rgba, anchors=anchors, view=view))
    if not out:
        raise DataError(f"no usable mask templates in {str(root / 'masks' / 'masks.cfg')!r}")
    return sorted(out, key=lambda t: t.name)


def load_textures(data: str | Path, res: int) -> list[tuple[str, np.ndarray]]:
    """All texture images, centre-cropped square and resized to ``res`` (RGB uint8)."""
    root = masktheface_dir(data) / "masks" / "textures"
    out = []
    for path in sorted(p for p in root.rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg")):
        with Image.open(path) as im:
            img = im.convert("RGB")
        s = min(img.size)
        left, top = (img.size[0] - s) // 2, (img.size[1] - s) // 2
        img = img.crop((left, top, left + s, top + s)).resize((res, res), Image.Resampling.BICUBIC)
        out.append((path.relative_to(root).as_posix(), np.asarray(img)))
    return out


def yaw_ratio(landmarks: torch.Tensor) -> torch.Tensor:
    """Where the nose tip sits between the jaw ends (0 = at image-left jaw end, 0.5 = frontal)."""
    jaw_l, jaw_r, nose = landmarks[:, 0, 0], landmarks[:, 16, 0], landmarks[:, 30, 0]
    return (nose - jaw_l) / (jaw_r - jaw_l).clamp_min(1e-3)


def face_anchors(landmarks: torch.Tensor) -> torch.Tensor:
    """The six face points ``[N, 6, 2]`` matched to the template anchors a..f."""
    return torch.stack([landmarks[:, list(idx)].mean(1) for idx in ANCHOR_LANDMARKS], 1)


def _normaliser(pts: torch.Tensor) -> torch.Tensor:
    """Hartley normalisation ``[N, 3, 3]``: zero mean, mean distance sqrt(2)."""
    mu = pts.mean(1)
    d = (pts - mu[:, None]).norm(dim=-1).mean(1).clamp_min(1e-9)
    s = np.sqrt(2.0) / d
    t = torch.zeros(pts.shape[0], 3, 3, dtype=pts.dtype, device=pts.device)
    t[:, 0, 0] = s
    t[:, 1, 1] = s
    t[:, 0, 2] = -s * mu[:, 0]
    t[:, 1, 2] = -s * mu[:, 1]
    t[:, 2, 2] = 1.0
    return t


def homography(src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    """Least-squares homographies ``[N, 3, 3]`` with ``dst ~ H src`` from ``[N, K, 2]`` pairs (K >= 4)."""
    src, dst = src.double(), dst.double()
    ts, td = _normaliser(src), _normaliser(dst)

    def apply(t: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        return p @ t[:, :2, :2].transpose(1, 2) + t[:, None, :2, 2]

    s, d = apply(ts, src), apply(td, dst)
    x, y, u, v = s[..., 0], s[..., 1], d[..., 0], d[..., 1]
    one, zero = torch.ones_like(x), torch.zeros_like(x)
    rows_u = torch.stack([x, y, one, zero, zero, zero, -u * x, -u * y], -1)
    rows_v = torch.stack([zero, zero, zero, x, y, one, -v * x, -v * y], -1)
    a = torch.cat([rows_u, rows_v], 1)
    b = torch.cat([u, v], 1)
    ata = a.transpose(1, 2) @ a + 1e-12 * torch.eye(8, dtype=a.dtype, device=a.device)
    h = torch.linalg.solve(ata, (a.transpose(1, 2) @ b[..., None]))[..., 0]
    hm = torch.cat([h, torch.ones_like(h[:, :1])], 1).reshape(-1, 3, 3)
    return torch.linalg.inv(td) @ hm @ ts


def eye_clearance(landmarks: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """``[N,1,h,w]`` factor that is 0 on and just below each eye and 1 elsewhere (soft edge).

    Real masks sit below the eyes. Some side-view templates (KN95_*, gas_*) have their top anchors
    well below the mask's top edge, so on some faces they would reach the lower eyelids; this
    clips them with an ellipse per eye (semi-axes 0.8 and 0.5 eye widths) instead.
    """
    ys = torch.arange(h, device=landmarks.device, dtype=torch.float32)[None, :, None]
    xs = torch.arange(w, device=landmarks.device, dtype=torch.float32)[None, None, :]
    keep = torch.ones(landmarks.shape[0], h, w, device=landmarks.device)
    for corner_a, corner_b, sl in ((36, 39, slice(36, 42)), (42, 45, slice(42, 48))):
        c = landmarks[:, sl].mean(1)
        width = (landmarks[:, corner_b] - landmarks[:, corner_a]).norm(dim=-1).clamp_min(1.0)
        dx = (xs - c[:, 0, None, None]) / (0.8 * width[:, None, None])
        dy = (ys - c[:, 1, None, None]) / (0.5 * width[:, None, None])
        keep = keep * ((dx * dx + dy * dy).sqrt() - 1.0).div(0.15).clamp(0, 1)
    return keep[:, None]


class MaskSynthesizer:
    """Put a random MaskTheFace mask on each face of a batch.

    ``__call__(hr [N,3,H,W] in [0,1], landmarks [N,68,2] in that frame, generator)`` returns
    ``(masked_hr, occlusion)``; ``occlusion`` is the mask's coverage ``[N,1,H,W]`` in [0, 1]
    (antialiased; threshold at 0.5 for a binary mask).
    """

    def __init__(
        self,
        data: str | Path,
        *,
        device: str | torch.device = "cpu",
        res: int = 128,
        p_colour: float = 0.35,
        p_texture: float = 0.25,
        supersample: int = 1,
        kinds: tuple[str, ...] | None = None,
        exclude: tuple[str, ...] = EXCLUDED_TEMPLATES,
    ) -> None:
        self.device = torch.device(device)
        self.res = res
        self.p_colour = p_colour
        self.p_texture = p_texture
        self.supersample = supersample
        templates = [t for t in load_templates(data) if t.name not in exclude]
        if kinds is not None:
            templates = [t for t in templates if t.name.removesuffix("_left").removesuffix("_right") in kinds]
            if not templates:
                raise DataError(f"no mask templates of kinds {kinds}")
        self.names = [t.name for t in templates]
        canvas = np.zeros((len(templates), res, res, 4), dtype=np.uint8)
        anchors = np.zeros((len(templates), 6, 2))
        for i, t in enumerate(templates):
            h, w = t.rgba.shape[:2]
            f = res / max(h, w)
            nw, nh = max(1, round(w * f)), max(1, round(h * f))
            canvas[i, :nh, :nw] = np.asarray(
                Image.fromarray(t.rgba).resize((nw, nh), Image.Resampling.BICUBIC)
            )
            anchors[i] = (t.anchors + 0.5) * np.array([nw / w, nh / h]) - 0.5
        tpl = torch.from_numpy(canvas).permute(0, 3, 1, 2).float().div(255)
        tpl[:, :3] *= tpl[:, 3:]  # premultiplied alpha: transparent pixels' colour never bleeds in
        self.templates = tpl.to(self.device)
        self.anchors = torch.from_numpy(anchors).to(self.device)
        self.view_groups = {
            v: torch.tensor(
                [i for i, t in enumerate(templates) if t.view == v]
                or [i for i, t in enumerate(templates) if t.view == "front"],
                device=self.device,
            )
            for v in VIEWS
        }
        tex = load_textures(data, res)
        self.texture_names = [n for n, _ in tex]
        self.textures = torch.from_numpy(np.stack([a for _, a in tex])).permute(0, 3, 1, 2).float().div(255)
        self.textures = self.textures.to(self.device)

    def to(self, device: str | torch.device) -> MaskSynthesizer:
        """Move the preloaded templates and textures to ``device``."""
        self.device = torch.device(device)
        self.templates = self.templates.to(self.device)
        self.anchors = self.anchors.to(self.device)
        self.textures = self.textures.to(self.device)
        self.view_groups = {k: v.to(self.device) for k, v in self.view_groups.items()}
        return self

    def draw(self, landmarks: torch.Tensor, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """The random choices for a batch (template index, colour, texture, blend weights)."""
        n = landmarks.shape[0]
        gdev = generator.device
        u = torch.rand(n, 6, generator=generator, device=gdev).to(self.device)
        colour = torch.rand(n, 3, generator=generator, device=gdev).to(self.device)
        yaw = yaw_ratio(landmarks.to(self.device).float())
        idx = torch.empty(n, dtype=torch.long, device=self.device)
        for v, sel in (
            ("front", (yaw >= YAW_LEFT) & (yaw <= YAW_RIGHT)),
            ("left", yaw < YAW_LEFT),
            ("right", yaw > YAW_RIGHT),
        ):
            group = self.view_groups[v]
            pick = (u[:, 0] * len(group)).long().clamp_max(len(group) - 1)
            idx = torch.where(sel, group[pick], idx)
        tex = (u[:, 4] * len(self.textures)).long().clamp_max(len(self.textures) - 1)
        return {
            "template": idx,
            "use_colour": u[:, 1] < self.p_colour,
            "use_texture": u[:, 2] < self.p_texture,
            "weight": 0.35 + 0.35 * u[:, 3],
            "texture": tex,
            "colour": colour,
            "brightness": 0.85 + 0.3 * u[:, 5],
        }

    @torch.no_grad()
    def __call__(
        self, hr: torch.Tensor, landmarks: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if hr.ndim != 4 or hr.shape[1] != 3 or landmarks.shape[1:] != (68, 2) or len(hr) != len(landmarks):
            raise ValueError(
                f"expected hr [N,3,H,W] and landmarks [N,68,2], got {tuple(hr.shape)}, "
                f"{tuple(landmarks.shape)}"
            )
        n, _, h, w = hr.shape
        dev = hr.device
        if dev != self.device:
            self.to(dev)
        choice = self.draw(landmarks, generator)
        # Premultiplied template RGBA and the texture, sampled together with one grid.
        src = torch.cat([self.templates[choice["template"]], self.textures[choice["texture"]]], 1)

        # Output pixel centres -> template pixel coordinates through the homography face->template.
        hmat = homography(face_anchors(landmarks.to(dev).double()), self.anchors[choice["template"]]).float()
        ss = self.supersample
        ys = (torch.arange(h * ss, device=dev, dtype=torch.float32) + 0.5) / ss - 0.5
        xs = (torch.arange(w * ss, device=dev, dtype=torch.float32) + 0.5) / ss - 0.5
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")
        pts = torch.stack([gx, gy, torch.ones_like(gx)], -1).reshape(1, -1, 3)
        mapped = pts @ hmat.transpose(1, 2)  # [N, P, 3]
        z = mapped[..., 2:3]
        behind = z <= 1e-6  # points on/behind the horizon of the homography: no mask there
        uv = mapped[..., :2] / torch.where(behind, torch.ones_like(z), z)
        uv = torch.where(behind, torch.full_like(uv, -1e4), uv)
        grid = ((uv + 0.5) * (2.0 / self.res) - 1).reshape(n, h * ss, w * ss, 2)
        sampled = F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        if ss > 1:
            sampled = F.avg_pool2d(sampled, ss)
        cover = sampled[:, 3:4].clamp(0, 1) * eye_clearance(landmarks.to(dev).float(), h, w)
        rgb = sampled[:, :3] / cover.clamp_min(1e-4)  # un-premultiply
        texture = sampled[:, 4:7] / cover.clamp_min(1e-4)

        # Colour and texture blends (per-sample weights; zero weight = template as is).
        wgt = choice["weight"][:, None, None, None]
        w_col = wgt * choice["use_colour"][:, None, None, None]
        w_tex = wgt * choice["use_texture"][:, None, None, None]
        col = choice["colour"][:, :, None, None]
        rgb = rgb + (col - rgb) * w_col
        shade = rgb.mean(1, keepdim=True)
        rgb = rgb + (texture * (0.5 + 0.5 * shade) - rgb) * w_tex
        rgb = rgb * choice["brightness"][:, None, None, None]
        masked = hr + (rgb.clamp(0, 1) - hr) * cover
        return masked.clamp(0, 1), cover
