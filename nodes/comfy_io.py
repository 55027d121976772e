"""ComfyUI's V3 node schema, from the numbered API version `comfy_api.v0_0_2` (in cores since 0.3.48), or, in
plain Python where no ComfyUI is installed, the pack's stand-in (`io_standin`). Newer schema features are used
where the core has them: an input folded under the node's advanced inputs, and search aliases (cores of 2026);
an older core gets the same node without them (every input shown, as before)."""

from __future__ import annotations

import dataclasses
import importlib.util
import inspect
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from . import io_standin as io
    from .io_standin import ComfyExtension
else:
    try:
        from comfy_api.v0_0_2 import ComfyExtension, io
    except ImportError:
        if importlib.util.find_spec("comfy") is not None and importlib.util.find_spec("folder_paths") is not None:
            raise ImportError(
                "The DeepDream nodes need ComfyUI 0.3.48 or newer (its V3 node API, comfy_api.v0_0_2): update ComfyUI."
            ) from None
        from . import io_standin as io
        from .io_standin import ComfyExtension

STANDIN = io.__name__.endswith("io_standin")
"""True outside ComfyUI."""
SCHEMA_FIELDS = frozenset(f.name for f in dataclasses.fields(io.Schema))
FOLDS = "advanced" in inspect.signature(io.Input.__init__).parameters
"""Whether this core folds inputs marked advanced (cores of 2026)."""

__all__ = ["ComfyExtension", "io", "schema", "folded"]


def schema(**fields: Any) -> io.Schema:
    """A node's schema, leaving out the fields this core does not have (search_aliases before 2026)."""
    return io.Schema(**{name: value for name, value in fields.items() if name in SCHEMA_FIELDS})


def folded(advanced: bool) -> dict[str, Any]:
    """An input's keyword folding it under the node's advanced inputs, where the core folds."""
    return {"advanced": True} if advanced and FOLDS else {}
