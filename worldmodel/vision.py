"""Pixel encoders: ``uint8 (N, H, W, 3)`` frames -> feature vectors ``(N, F)``.

``conv`` is the CPU default (four strided convolutions, no normalisation: cheap per frame);
``keypoints`` reads spatial-softmax keypoints (smooth in an object's position);
``deep_conv`` is the paper's 4 x [conv k4 s2, BatchNorm, GELU] 32-64-128-256 with average
pooling; ``vit`` a ViT-tiny for GPUs. Inputs are ``channels_last``, which oneDNN prefers.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from common.registry import Registry

__all__ = ["PIXEL_ENCODERS", "ConvEncoder", "DeepConvEncoder", "KeypointEncoder",
           "StridedConvEncoder", "ViTEncoder", "pixels_to_float"]


def pixels_to_float(pixels: Tensor) -> Tensor:
    """``uint8 (N, H, W, 3)`` -> ``float (N, 3, H, W)`` in [-1, 1], channels-last in memory."""
    if pixels.dtype != torch.uint8 or pixels.dim() != 4 or pixels.shape[-1] != 3:
        raise ValueError(f"expected uint8 frames (N, H, W, 3), got {pixels.dtype} "
                         f"{tuple(pixels.shape)}")
    x = pixels.permute(0, 3, 1, 2).float().mul_(2.0 / 255.0).sub_(1.0)  # (N, 3, H, W)
    return x.contiguous(memory_format=torch.channels_last)


def _stride2_convs(widths: list[int], norm: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for c_in, c_out in zip([3, *widths[:-1]], widths):
        layers.append(nn.Conv2d(c_in, c_out, kernel_size=4, stride=2, padding=1, bias=not norm))
        if norm:
            layers.append(nn.BatchNorm2d(c_out))
        layers.append(nn.GELU())
    return nn.Sequential(*layers)


class StridedConvEncoder(nn.Module):
    """Strided 4x4 convolutions (each halves the image), then a linear head to ``F`` features.

    Args:
        widths: output channels of each convolution.
        norm: BatchNorm after each convolution.
        pool: average the last feature map over space (else flatten it).
    """

    def __init__(self, image_size: int, feature_dim: int, widths: tuple[int, ...],
                 norm: bool, pool: bool):
        super().__init__()
        shrink = 2 ** len(widths)
        if image_size % shrink:
            raise ValueError(f"{len(widths)} stride-2 convolutions need image_size divisible by "
                             f"{shrink}, got {image_size}")
        self.convs = _stride2_convs(list(widths), norm)
        self.pool = pool
        side = 1 if pool else image_size // shrink
        self.head = nn.Linear(widths[-1] * side * side, feature_dim)
        self.feature_dim = feature_dim

    def forward(self, pixels: Tensor) -> Tensor:
        x = self.convs(pixels_to_float(pixels))  # (N, C, h, w)
        x = x.mean(dim=(2, 3)) if self.pool else x.flatten(1)  # (N, C) or (N, C*h*w)
        return self.head(x)  # (N, F)


class ConvEncoder(StridedConvEncoder):
    """Small CPU-fast encoder: 4 strided convs (32-64-128-128), no norm, flatten, linear."""

    def __init__(self, image_size: int, feature_dim: int = 256):
        super().__init__(image_size, feature_dim, (32, 64, 128, 128), norm=False, pool=False)


class DeepConvEncoder(StridedConvEncoder):
    """The paper's encoder: 4 x [conv k4 s2, BN, GELU] 32-64-128-256, average pool, linear."""

    def __init__(self, image_size: int, feature_dim: int = 256):
        super().__init__(image_size, feature_dim, (32, 64, 128, 256), norm=True, pool=True)


class KeypointEncoder(nn.Module):
    """Spatial-softmax keypoints: 2 strided convs and 2 plain ones to 64 maps at 1/4
    resolution, each turned into the expected (x, y) of its softmax over space, then a linear
    head. The features move smoothly and linearly with an object's position, where flattened
    conv features of a small object change abruptly (for point-like robots, e.g. point_mass).
    """

    def __init__(self, image_size: int, feature_dim: int = 256, keypoints: int = 64):
        super().__init__()
        if image_size % 4:
            raise ValueError(f"the keypoint encoder needs image_size divisible by 4, got "
                             f"{image_size}")
        self.convs = nn.Sequential(
            _stride2_convs([32, 64], norm=False),
            nn.Conv2d(64, 64, 3, padding=1), nn.GELU(), nn.Conv2d(64, keypoints, 3, padding=1))
        side = image_size // 4
        grid = torch.linspace(-1.0, 1.0, side)
        self.register_buffer("grid_x", grid.repeat(side), persistent=False)  # (side*side,)
        self.register_buffer("grid_y", grid.repeat_interleave(side), persistent=False)
        self.head = nn.Linear(2 * keypoints, feature_dim)
        self.feature_dim = feature_dim

    def forward(self, pixels: Tensor) -> Tensor:
        maps = self.convs(pixels_to_float(pixels)).flatten(2)  # (N, K, h*w)
        attention = torch.softmax(maps.float(), dim=-1)  # (N, K, h*w)
        points = torch.cat([attention @ self.grid_x, attention @ self.grid_y], dim=1)  # (N, 2K)
        return self.head(points.to(maps.dtype))  # (N, F)


class ViTEncoder(nn.Module):
    """ViT-tiny (width 192, 12 pre-norm blocks, 3 heads) on an 8 x 8 grid of patches; for GPUs.

    The CLS token's output goes through a linear head to ``F`` features (LeWM's encoder).
    """

    def __init__(self, image_size: int, feature_dim: int = 256, width: int = 192,
                 depth: int = 12, heads: int = 3, grid: int = 8):
        super().__init__()
        if image_size % grid:
            raise ValueError(f"vit needs image_size divisible by {grid}, got {image_size}")
        patch = image_size // grid
        self.patchify = nn.Conv2d(3, width, kernel_size=patch, stride=patch)
        self.cls = nn.Parameter(torch.zeros(1, 1, width))
        self.position = nn.Parameter(torch.randn(1, grid * grid + 1, width) * 0.02)
        layer = nn.TransformerEncoderLayer(width, heads, 4 * width, dropout=0.0,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, feature_dim)
        self.feature_dim = feature_dim

    def forward(self, pixels: Tensor) -> Tensor:
        x = self.patchify(pixels_to_float(pixels)).flatten(2).transpose(1, 2)  # (N, P, W)
        x = torch.cat([self.cls.expand(len(x), -1, -1), x], dim=1) + self.position
        x = self.blocks(x)  # (N, P+1, W)
        return self.head(self.norm(x[:, 0]))  # (N, F)


# image side, feature width -> encoder; ``worldmodel.encoders.ENCODERS`` builds every encoder
PIXEL_ENCODERS: Registry[type[nn.Module]] = Registry("pixel encoder", "model.encoder")
for _name, _cls in (("conv", ConvEncoder), ("deep_conv", DeepConvEncoder),
                    ("keypoints", KeypointEncoder), ("vit", ViTEncoder)):
    PIXEL_ENCODERS.add(_name, _cls)

