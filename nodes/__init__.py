"""ComfyUI node wrappers over dream_core: one module per node family."""

from .channel_nodes import ChannelPictures
from .comfy_bridge import register_model_folder
from .creative_nodes import DreamFrames, DreamZoom, LayerSweep
from .dream_nodes import DetailReinject, DreamNetwork, DreamRegion, OctaveDream
from .model_nodes import LayerWeights, LoadFeatureModel
from .samples import register_sample_provider
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
)
NODE_CLASS_MAPPINGS = {cls.__name__: cls for cls in NODES}
NODE_DISPLAY_NAME_MAPPINGS = {cls.__name__: cls.DISPLAY_NAME for cls in NODES}  # each declared with its class
