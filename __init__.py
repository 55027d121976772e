"""ComfyUI entry point of the DeepDream node pack: a V3 extension (`comfy_entrypoint`).

ComfyUI imports this folder as a package and asks `comfy_entrypoint` for the extension, which lists the nodes.
The engine lives in `dream_core` (no ComfyUI imports); `nodes` holds the V3 node classes, which import the
engine relatively, so the pack needs no installation step. No NODE_CLASS_MAPPINGS here: a core that finds one
reads the pack as V1 nodes and never asks the extension.
"""

from .nodes import DeepDreamExtension

# The frontend reads each node's help page from here: web/docs/NODE.md (tools/build_node_docs.py).
WEB_DIRECTORY = "./web"


async def comfy_entrypoint() -> DeepDreamExtension:
    return DeepDreamExtension()


__all__ = ["WEB_DIRECTORY", "comfy_entrypoint"]
