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


def keep(batch: t.Batch, index: int, change: t.Change) -> bool:
    # Only this one attribute crosses the boundary, not the whole image or record.
    side = t.Side.NEW_IMAGE if change.has_new_image else t.Side.OLD_IMAGE
    value = batch.get(index, side, ATTRIBUTE)
    return isinstance(value, t.Attribute_S) and value.value == EQUALS


class WitWorld(wit_world.WitWorld):
    def init(self, config: str) -> None:
        global ATTRIBUTE, EQUALS
        settings = json.loads(config)
        if not isinstance(settings, dict):
            raise Err("config must be a mapping")
        # A mistyped key must not be ignored silently ({"species": "cat"} would keep the dogs).
        for key in settings:
            if key not in ("attribute", "equals"):
                raise Err(f"unknown config key `{key}` (known: `attribute`, `equals`)")
        for key in ("attribute", "equals"):
            if key in settings and not isinstance(settings[key], str):
                raise Err(f"`{key}` must be a string, got {settings[key]!r}")
        ATTRIBUTE = settings.get("attribute", ATTRIBUTE)
        EQUALS = settings.get("equals", EQUALS)

    def process(self, batch: t.Batch, changes: list[t.Change]) -> list[t.Verdict]:
        return [
            t.Verdict_Pass() if keep(batch, index, change) else t.Verdict_Drop()
            for index, change in enumerate(changes)
        ]
