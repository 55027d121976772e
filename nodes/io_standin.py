"""A stand-in for the few names of ComfyUI's V3 node schema (`comfy_api.v0_0_2`: `io` and `ComfyExtension`) that
this pack uses, so that its nodes import, describe themselves and run in plain Python (the tests, CI, scripts)
where no ComfyUI is installed. Inside ComfyUI the real module is used (`nodes/comfy_io.py` chooses).

It mirrors the real schema's behaviour that matters here: each input's V1 description (`INPUT_TYPES`, what
`/object_info` serves and what saved workflows are read against), the outputs' types, names and tooltips, and
`execute` answering with a `NodeOutput`. `tests/test_comfy_io.py` checks it against the real module of each core
it is pointed at (the 2025 and the 2026 cores), node by node.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar


def _pruned(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


class _ClassProperty:
    """A read-only property of the class (the V1 names a V3 node answers to: RETURN_TYPES, DESCRIPTION...)."""

    def __init__(self, getter):
        self.getter = getter

    def __get__(self, _instance, owner):
        return self.getter(owner)


class Input:
    """One input of a node: a socket, or a widget (`WidgetInput`)."""

    io_type: ClassVar[str] = "*"

    def __init__(
        self,
        id: str,
        display_name: str | None = None,
        optional: bool = False,
        tooltip: str | None = None,
        lazy: bool | None = None,
        extra_dict: dict | None = None,
        raw_link: bool | None = None,
        advanced: bool | None = None,
    ):
        self.id = id
        self.display_name = display_name
        self.optional = optional
        self.tooltip = tooltip
        self.lazy = lazy
        self.extra_dict = extra_dict or {}
        self.raw_link = raw_link
        self.advanced = advanced

    def as_dict(self) -> dict[str, Any]:
        return _pruned(
            {
                "display_name": self.display_name,
                "optional": self.optional,
                "tooltip": self.tooltip,
                "lazy": self.lazy,
                "rawLink": self.raw_link,
                "advanced": self.advanced,
            }
        ) | _pruned(self.extra_dict)


class WidgetInput(Input):
    def __init__(self, id: str, *, default: Any = None, **more):
        super().__init__(id, **more)
        self.default = default

    def as_dict(self) -> dict[str, Any]:
        return super().as_dict() | _pruned({"default": self.default})


class Output:
    io_type: ClassVar[str] = "*"

    def __init__(
        self, id: str | None = None, display_name: str | None = None, tooltip: str | None = None, is_output_list=False
    ):
        self.id = id
        self.display_name = display_name
        self.tooltip = tooltip
        self.is_output_list = is_output_list


class _Type:
    """A V3 type: `Type.Input(...)` and `Type.Output(...)` make its inputs and outputs."""

    io_type: ClassVar[str]
    Input: ClassVar[type[Input]]
    Output: ClassVar[type[Output]]


def _io_type(name: str, input_base: type[Input] = Input) -> type[_Type]:
    """A type whose inputs and outputs carry `name` (IMAGE, MASK, VIDEO, or one of this pack's own)."""
    attributes = {"io_type": name}
    return type(
        name,
        (_Type,),
        {
            "io_type": name,
            "Input": type("Input", (input_base,), attributes),
            "Output": type("Output", (Output,), attributes),
        },
    )


def Custom(io_type: str) -> type[_Type]:
    """A type of this pack's own (FEATURE_MODEL, LAYER_WEIGHTS...): sockets only."""
    return _io_type(io_type)


Image = _io_type("IMAGE")
Mask = _io_type("MASK")
Video = _io_type("VIDEO")
Audio = _io_type("AUDIO")


class _IntInput(WidgetInput):
    def __init__(self, id: str, *, min=None, max=None, step=None, control_after_generate=None, **more):
        super().__init__(id, **more)
        self.min, self.max, self.step, self.control_after_generate = min, max, step, control_after_generate

    def as_dict(self) -> dict[str, Any]:
        extra = {"min": self.min, "max": self.max, "step": self.step}
        return super().as_dict() | _pruned({**extra, "control_after_generate": self.control_after_generate})


class _FloatInput(WidgetInput):
    def __init__(self, id: str, *, min=None, max=None, step=None, round=None, **more):
        super().__init__(id, **more)
        self.min, self.max, self.step, self.round = min, max, step, round

    def as_dict(self) -> dict[str, Any]:
        return super().as_dict() | _pruned({"min": self.min, "max": self.max, "step": self.step, "round": self.round})


class _StringInput(WidgetInput):
    def __init__(self, id: str, *, multiline=False, placeholder=None, **more):
        super().__init__(id, **more)
        self.multiline, self.placeholder = multiline, placeholder

    def as_dict(self) -> dict[str, Any]:
        return super().as_dict() | _pruned({"multiline": self.multiline, "placeholder": self.placeholder})


class _ComboInput(WidgetInput):
    def __init__(self, id: str, options: list | None = None, **more):
        super().__init__(id, **more)
        self.options = options

    def as_dict(self) -> dict[str, Any]:
        return super().as_dict() | _pruned({"multiselect": False, "options": self.options})


Int = _io_type("INT", _IntInput)
Float = _io_type("FLOAT", _FloatInput)
Boolean = _io_type("BOOLEAN", WidgetInput)
String = _io_type("STRING", _StringInput)
Combo = _io_type("COMBO", _ComboInput)


@dataclass
class Schema:
    """What a V3 node declares: its id, names, inputs and outputs (the fields this pack uses)."""

    node_id: str
    display_name: str | None = None
    category: str = "sd"
    inputs: list[Input] = field(default_factory=list)
    outputs: list[Output] = field(default_factory=list)
    description: str = ""
    search_aliases: list[str] = field(default_factory=list)
    is_output_node: bool = False
    not_idempotent: bool = False

    def validate(self) -> None:
        inputs, outputs = [i.id for i in self.inputs], [o.id for o in self.outputs]
        if len(set(inputs)) != len(inputs) or len(set(outputs)) != len(outputs) or set(inputs) & set(outputs):
            raise ValueError(f"{self.node_id}: input and output ids must all differ ({inputs}, {outputs}).")

    def v1_inputs(self) -> dict[str, dict[str, tuple[str, dict]]]:
        """The inputs as ComfyUI's V1 nodes give them: required, then optional, each in the schema's order."""
        described: dict[str, dict[str, tuple[str, dict]]] = {}
        for item in self.inputs:
            options = item.as_dict()
            options.pop("optional", None)
            described.setdefault("optional" if item.optional else "required", {})[item.id] = (item.io_type, options)
        return described


class NodeOutput:
    """What `execute` answers: the outputs in order (indexable like a tuple), and optionally what the UI shows."""

    def __init__(self, *args: Any, ui: Any = None):
        self.args = args
        self.ui = ui

    @property
    def result(self) -> tuple | None:
        return self.args if self.args else None

    def __getitem__(self, index: int) -> Any:
        return self.args[index]


class ComfyNode:
    """A V3 node: `define_schema` says what it is, the classmethod `execute` runs it; the V1 names (INPUT_TYPES,
    RETURN_TYPES, ...) are read from the schema, as the real base class does."""

    @classmethod
    def define_schema(cls) -> Schema:
        raise NotImplementedError

    @classmethod
    def execute(cls, **kwargs) -> NodeOutput:
        raise NotImplementedError

    @classmethod
    def fingerprint_inputs(cls, **kwargs) -> Any:
        raise NotImplementedError

    @classmethod
    def GET_SCHEMA(cls) -> Schema:
        schema = cls.define_schema()
        schema.validate()
        return schema

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, dict[str, tuple[str, dict]]]:
        return cls.GET_SCHEMA().v1_inputs()

    @classmethod
    def EXECUTE_NORMALIZED(cls, *args, **kwargs) -> NodeOutput:
        output = cls.execute(*args, **kwargs)
        return output if isinstance(output, NodeOutput) else NodeOutput(*output)

    FUNCTION = "EXECUTE_NORMALIZED"
    DESCRIPTION = _ClassProperty(lambda cls: cls.GET_SCHEMA().description)
    CATEGORY = _ClassProperty(lambda cls: cls.GET_SCHEMA().category)
    OUTPUT_NODE = _ClassProperty(lambda cls: cls.GET_SCHEMA().is_output_node)
    RETURN_TYPES = _ClassProperty(lambda cls: [o.io_type for o in cls.GET_SCHEMA().outputs])
    RETURN_NAMES = _ClassProperty(lambda cls: [o.display_name or o.io_type for o in cls.GET_SCHEMA().outputs])
    OUTPUT_TOOLTIPS = _ClassProperty(lambda cls: [o.tooltip for o in cls.GET_SCHEMA().outputs])


class ComfyExtension(ABC):
    """The pack as a V3 extension: ComfyUI asks it for its nodes."""

    async def on_load(self) -> None:  # noqa: B027 (the real class's default: nothing to set up)
        """Nothing to set up by default."""

    @abstractmethod
    async def get_node_list(self) -> list[type[ComfyNode]]: ...
