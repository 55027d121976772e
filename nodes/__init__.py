"""ComfyUI node wrappers over dream_core: one module per node family."""

from .channel_nodes import ChannelPictures
from .comfy_bridge import register_model_folder
from .comfy_io import ComfyExtension, io
from .creative_nodes import DreamFrames, DreamZoom, LayerSweep
from .dream_nodes import DetailReinject, DreamNetwork, DreamRegion, OctaveDream
from .model_nodes import LayerWeights, LoadFeatureModel
from .samples import register_sample_provider
from .schedule_nodes import AudioEnvelope, DreamSchedule
from .train_nodes import TrainFeatureModel
from .video_nodes import DreamVideo, DreamVideoFile

register_model_folder()
register_sample_provider()

NODES = (
    LoadFeatureModel,
    LayerWeights,
    OctaveDream,
    DetailReinject,
    DreamRegion,
    DreamNetwork,
    LayerSweep,
    DreamFrames,
    DreamZoom,
    DreamVideo,
    DreamVideoFile,
    TrainFeatureModel,
    ChannelPictures,
    DreamSchedule,
    AudioEnvelope,
)
_SCHEMAS = [(cls, cls.GET_SCHEMA()) for cls in NODES]  # each made once at import
NODE_CLASS_MAPPINGS = {schema.node_id: cls for cls, schema in _SCHEMAS}
"""The nodes by id, as the core lists them (for tools and tests: ComfyUI itself asks the extension)."""
NODE_DISPLAY_NAME_MAPPINGS = {schema.node_id: schema.display_name for _, schema in _SCHEMAS}


class DeepDreamExtension(ComfyExtension):
    """The pack as ComfyUI's V3 extension: its nodes."""

    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return list(NODES)
