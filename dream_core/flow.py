"""Optical flow between video frames, from well-kept libraries (none is written here).

`dis`: OpenCV's DIS flow (no weights, CPU, about 10 ms at 512 px); `ilk`: scikit-image's
iterative Lucas-Kanade (no weights, CPU, slower); `raft`: torchvision's RAFT (GPU,
its weights downloaded once like the ImageNet ones). OpenCV is used when it is already
installed (any of its packages) and is never a requirement: installing
`opencv-python-headless` beside a user's `opencv-python` breaks both.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .errors import DreamError
from .weights import find_or_download, folders_of

FlowFunction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def resolve_flow_method(method: str) -> str:
    """The method 'auto' stands for here: dis if OpenCV can be imported, else ilk."""
    if method != "auto":
        return method
    return "dis" if importlib.util.find_spec("cv2") is not None else "ilk"


def _grey_u8(image: torch.Tensor) -> np.ndarray:
    grey = (image[0].float().cpu() * torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)).sum(0)
    return (grey.clamp(0, 1) * 255).round().to(torch.uint8).numpy()


def _dis() -> FlowFunction:
    try:
        import cv2
    except ImportError as error:
        raise DreamError(
            "flow 'dis' needs OpenCV, which is not installed. Install opencv-python-headless (or opencv-python if "
            "other software uses it; never both), or choose flow 'ilk'."
        ) from error
    dis = cv2.DISOpticalFlow_create(  # type: ignore[attr-defined]
        cv2.DISOPTICAL_FLOW_PRESET_MEDIUM
    )

    def flow(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(dis.calc(_grey_u8(a), _grey_u8(b), None)).permute(2, 0, 1).contiguous()

    return flow


def _ilk() -> FlowFunction:
    try:
        from skimage.registration import optical_flow_ilk
    except ImportError as error:
        raise DreamError("flow 'ilk' needs scikit-image: pip install scikit-image, or choose flow 'dis'.") from error

    def flow(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        # scikit-image's (v, u) at the reference's pixels registers the moving image onto it:
        # moving(x + (u, v)) = reference(x), i.e. the reference -> moving flow, as DIS gives.
        v, u = optical_flow_ilk(_grey_u8(a).astype(np.float32) / 255, _grey_u8(b).astype(np.float32) / 255, radius=7)
        return torch.from_numpy(np.stack([u, v])).float()

    return flow


def _raft(device: torch.device, weights_dir: str | os.PathLike | Sequence[str | os.PathLike] | None) -> FlowFunction:
    from torchvision.models.optical_flow import Raft_Small_Weights, raft_small

    url = Raft_Small_Weights.C_T_V2.url
    state = find_or_download(
        url.rsplit("/", 1)[-1], url, folders_of(weights_dir or None), "RAFT's weights", "Or choose flow 'dis' or 'ilk'."
    )
    with torch.inference_mode(False):
        net = raft_small(weights=None).eval().requires_grad_(False)
        net.load_state_dict(state)
        net.to(device)

    @torch.no_grad()
    def flow(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        height, width = a.shape[-2:]
        size = (max(128, (height + 7) // 8 * 8), max(128, (width + 7) // 8 * 8))  # RAFT takes multiples of 8
        pair = [
            F.interpolate(x.to(device, torch.float32), size=size, mode="bilinear", align_corners=False) * 2 - 1
            for x in (a, b)
        ]
        estimate = net(pair[0], pair[1], num_flow_updates=12)[-1]
        estimate = F.interpolate(estimate, size=(height, width), mode="bilinear", align_corners=False)
        scale = torch.tensor([width / size[1], height / size[0]]).view(1, 2, 1, 1).to(estimate.device)
        return (estimate * scale)[0]  # stays where the dream runs

    return flow


FLOW_MAX_SIDE = 720
"""Flow is estimated on frames no larger than this (px) and scaled up: the dream's patterns
are far coarser than the motion detail it loses, and at 1080p DIS takes ~0.35 s a flow and
RAFT's correlation volume ~5.6 GB, against a quarter of that at 720 px."""


FLOW_MIN_SIDE = 32
"""Smaller frames are enlarged for the estimate: DIS refuses frames under 12 px, and RAFT needs 128."""


def _at_most(flow: FlowFunction, max_side: int) -> FlowFunction:
    """`flow` run on frames shrunk to `max_side` px (or enlarged to `FLOW_MIN_SIDE`), its result resized
    and scaled back to pixels."""

    def scaled(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        height, width = a.shape[-2:]
        scale = max_side / max(height, width)
        if min(height, width) < FLOW_MIN_SIDE:
            scale = FLOW_MIN_SIDE / min(height, width)
        elif scale >= 1.0:
            return flow(a, b)
        size = (max(8, round(height * scale)), max(8, round(width * scale)))
        mode = "area" if scale < 1.0 else "bilinear"
        small = flow(*(F.interpolate(x.float(), size=size, mode=mode) for x in (a, b)))
        big = F.interpolate(small[None].float(), size=(height, width), mode="bilinear", align_corners=False)[0]
        factors = torch.tensor([width / size[1], height / size[0]], dtype=big.dtype).view(2, 1, 1)
        return big * factors.to(big.device)

    return scaled


def flow_function(
    method: str, device: torch.device | str = "cpu", weights_dir=None, max_side: int = FLOW_MAX_SIDE
) -> FlowFunction:
    """`flow(a, b)`: the optical flow `[2, H, W]` (dx, dy in pixels) from frame `a` to frame `b`
    (`[1, 3, H, W]` in 0..1): the pixel at x in `a` moves to x + flow(x) in `b`.

    Frames larger than `max_side` are shrunk for the estimate (`FLOW_MAX_SIDE`). RAFT runs
    on `device` and leaves its flow there; DIS and ILK run on the CPU.
    """
    method = resolve_flow_method(method)
    if method == "dis":
        estimate = _dis()
    elif method == "ilk":
        estimate = _ilk()
    elif method == "raft":
        estimate = _raft(torch.device(device), weights_dir)
    else:
        raise DreamError(f"Unknown flow method {method!r}; choose auto, dis, ilk or raft.")
    return _at_most(estimate, max_side)
