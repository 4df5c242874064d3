"""Bring any image tensor to the book's common format: uint8 RGB 32×32."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def to_rgb(images: torch.Tensor, size: int = 32) -> torch.Tensor:
    """uint8 ``[N, C, h, w]`` (C = 1 or 3) → uint8 ``[N, 3, size, size]``.

    Bilinear resampling (no-op when already ``size``); grey images are
    repeated over three channels.
    """
    if images.shape[-2:] != (size, size):
        x = F.interpolate(images.float(), size=(size, size), mode="bilinear", align_corners=False)
        images = x.round_().clamp_(0, 255).to(torch.uint8)
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    return images.contiguous()
