"""Vision transformers as dreamable networks (toward issue 30): their tokens read as feature maps, at any size.

torchvision's ViT and Swin keep their activations as token sequences (`[B, 1 + h*w, D]`, the class token first) or
channels-last maps (`[B, H, W, C]`); the engine reads every layer as `[B, C, H, W]`. `DreamViT` and `DreamSwin` are
torchvision's own classes (the same modules and state-dict keys, so ImageNet weights and saved state dicts load
as they are) with a forward pass that also hands each block's output, as a `[B, C, H, W]` map, to a parameter-free
`TokenMap` module: the layer a hook reads. The class token is left out of the map; a ViT block's class token is a
layer of its own (`blocks.7.cls`, a `[B, C, 1, 1]` map).

ViT dreams at any size: the picture is cut into as many patches as fit, and the position embeddings (learnt for
the training grid, 14 x 14 for ViT-B/16 at 224 px) are resized to the picture's grid by bicubic interpolation.
Swin pads each window itself, so it takes any size as it is.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.swin_transformer import SwinTransformer
from torchvision.models.vision_transformer import VisionTransformer


class TokenMap(nn.Module):
    """No parameters: its output is the feature map a hook reads (tokens or channels-last in, `[B, C, H, W]` out)."""

    def forward(self, tokens: torch.Tensor, grid: tuple[int, int] | None = None) -> torch.Tensor:
        if grid is None:  # channels last [B, H, W, C]
            return tokens.permute(0, 3, 1, 2)
        patches = tokens[:, 1:]  # the class token apart
        return patches.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], *grid)


class ClassToken(nn.Module):
    """No parameters: a ViT block's class token as a `[B, C, 1, 1]` map, the layer a hook reads.

    The class token is what the classifier reads: dreaming its channels (`blocks.11.cls[3]`) asks the whole picture
    for one of the features the network sums it up by, as `class:NAME` asks for a class.
    """

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return tokens[:, 0, :, None, None]


def resized_positions(positions: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """ViT's position embeddings `[1, 1 + g*g, D]` for a `grid` of patches (the class token's kept as it is)."""
    side = round((positions.shape[1] - 1) ** 0.5)
    if (side, side) == tuple(grid):
        return positions
    patches = positions[:, 1:].reshape(1, side, side, -1).permute(0, 3, 1, 2)
    patches = F.interpolate(patches.float(), size=grid, mode="bicubic", align_corners=False).to(positions.dtype)
    return torch.cat([positions[:, :1], patches.flatten(2).transpose(1, 2)], dim=1)


class DreamViT(VisionTransformer):
    """torchvision's VisionTransformer at any input size, each encoder block's patch tokens a `TokenMap` layer."""

    maps: nn.ModuleList

    class_maps: nn.ModuleList

    @classmethod
    def of(cls, net: VisionTransformer) -> DreamViT:
        net.__class__ = cls
        net.maps = nn.ModuleList(TokenMap() for _ in net.encoder.layers)
        net.class_maps = nn.ModuleList(ClassToken() for _ in net.encoder.layers)
        return net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        patches = self.conv_proj(x)  # as many whole patches as fit
        grid = (patches.shape[-2], patches.shape[-1])
        tokens = patches.flatten(2).transpose(1, 2)
        tokens = torch.cat([self.class_token.expand(x.shape[0], -1, -1), tokens], dim=1)
        tokens = self.encoder.dropout(tokens + resized_positions(self.encoder.pos_embedding, grid))
        for block, token_map, class_map in zip(self.encoder.layers, self.maps, self.class_maps, strict=True):
            tokens = block(tokens)
            token_map(tokens, grid)
            class_map(tokens)
        return self.heads(self.encoder.ln(tokens)[:, 0])


class DreamSwin(SwinTransformer):
    """torchvision's SwinTransformer, each stage and each block a `TokenMap` layer (channels first)."""

    maps: nn.ModuleDict

    @classmethod
    def of(cls, net: SwinTransformer) -> DreamSwin:
        net.__class__ = cls
        names = [name for name, _ in _swin_parts(net)]
        net.maps = nn.ModuleDict({name.replace(".", "_"): TokenMap() for name in names})
        return net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for index, part in enumerate(self.features):
            if index and isinstance(part, nn.Sequential):  # a stage of blocks
                for number, block in enumerate(part):
                    x = block(x)
                    self.maps[f"features_{index}_{number}"](x)
            else:
                x = part(x)
            self.maps[f"features_{index}"](x)
        return self.head(self.flatten(self.avgpool(self.permute(self.norm(x)))))


def _swin_parts(net: nn.Module) -> list[tuple[str, nn.Module]]:
    """Swin's layers in forward order: each feature part, and before a stage's own name, its blocks."""
    parts: list[tuple[str, nn.Module]] = []
    for index, part in enumerate(net.features):  # type: ignore[arg-type]
        if index and isinstance(part, nn.Sequential):
            parts += [(f"features.{index}.{number}", block) for number, block in enumerate(part)]
        parts.append((f"features.{index}", part))
    return parts


def transformer_layers(net: nn.Module) -> list[tuple[str, str, tuple[str, ...]]]:
    """(name, module path of its `TokenMap`, aliases) of a wrapped transformer's layers, in forward order."""
    if isinstance(net, DreamViT):  # each block's patches, then its class token
        return [
            layer
            for i in range(len(net.maps))
            for layer in (
                (f"blocks.{i}", f"maps.{i}", (f"encoder_layer_{i}",)),
                (f"blocks.{i}.cls", f"class_maps.{i}", ()),
            )
        ]
    if isinstance(net, DreamSwin):
        return [(name, f"maps.{name.replace('.', '_')}", ()) for name, _ in _swin_parts(net)]
    raise TypeError(f"{type(net).__name__} is no wrapped transformer")


def wrapped(net: nn.Module) -> nn.Module:
    """A torchvision ViT or Swin as `DreamViT` / `DreamSwin` (the same object, its class swapped)."""
    if isinstance(net, VisionTransformer):
        return DreamViT.of(net)
    if isinstance(net, SwinTransformer):
        return DreamSwin.of(net)
    raise TypeError(f"{type(net).__name__} is neither a ViT nor a Swin")
