"""@NAME@: an eddy processor in Python.

Keeps the records whose image has the attribute `attribute` (an `S` value) equal to `equals`, and
drops the rest; a REMOVE is judged by its old image, so deleting a kept item reaches the sinks too.
Config (the processor's `config:` in the pipeline YAML, as JSON): {"attribute": "species",
"equals": "dog"} (the defaults).
"""

import json

import wit_world
from componentize_py_types import Err
from wit_world.imports import types as t

ATTRIBUTE = "species"
EQUALS = "dog"


def keep(change: t.Change) -> bool:
    # Only this one attribute crosses the boundary, not the whole image.
    image = change.new_image or change.old_image
    value = image.get(ATTRIBUTE) if image else None
    return isinstance(value, t.Attribute_S) and value.value == EQUALS


class WitWorld(wit_world.WitWorld):
    def init(self, config: str) -> None:
        global ATTRIBUTE, EQUALS
        settings = json.loads(config)
        if not isinstance(settings, dict):
            raise Err("config must be a mapping")
        for key in ("attribute", "equals"):
            if key in settings and not isinstance(settings[key], str):
                raise Err(f"`{key}` must be a string, got {settings[key]!r}")
        ATTRIBUTE = settings.get("attribute", ATTRIBUTE)
        EQUALS = settings.get("equals", EQUALS)

    def process(self, batch: list[t.Change]) -> list[t.Verdict]:
        return [t.Verdict_Pass() if keep(change) else t.Verdict_Drop() for change in batch]
