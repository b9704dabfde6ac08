"""An eddy processor in Python that shows every verdict kind.

Each record says what should happen to it in its image's `action` attribute (the new image, or
the old one for a REMOVE):

- absent or `pass`: forward it unchanged
- `drop`: forward it nowhere
- `replace`: forward it with `processed_by` added to the new image
- `route:NAME`: forward it only to the route's sink NAME
- `fan-out`: forward two copies, `copy` 1 and 2, instead of it
- `fail`: send it to the dead letter

`config: {processed_by: NAME}` sets the value `replace` writes (default `python`).

Build (from this folder, with `pip install componentize-py`):

    componentize-py -d ../../../wit -w processor componentize app -o every_verdict.wasm
"""

import json

import wit_world
from componentize_py_types import Err
from wit_world.imports import host
from wit_world.imports import types as t

PROCESSED_BY = "python"


def action(batch: t.Batch, i: int, change: t.Change) -> str:
    """The record's `action`, read from the image without fetching the rest of the record."""
    side = t.Side.NEW_IMAGE if change.has_new_image else t.Side.OLD_IMAGE
    value = batch.get(i, side, "action")
    return value.value if isinstance(value, t.Attribute_S) else "pass"


def replacement(batch: t.Batch, i: int, change: t.Change, **added: dict) -> t.Replacement:
    """The change as a replacement, with `added` attributes (DynamoDB JSON) in its new image."""
    new_text = batch.to_json(i, t.Side.NEW_IMAGE)
    new = json.loads(new_text) if new_text is not None else None
    if new is not None:
        new.update(added)
    return t.Replacement(
        event_id=batch.event_id(i),
        event_name=change.event_name,
        sequence_number=batch.sequence_number(i),
        approximate_creation_time=change.approximate_creation_time,
        size_bytes=change.size_bytes,
        keys=batch.keys(i),
        new_image=json.dumps(new) if new is not None else None,
        old_image=batch.to_json(i, t.Side.OLD_IMAGE),
    )


def verdict(batch: t.Batch, i: int, change: t.Change) -> t.Verdict:
    what = action(batch, i, change)
    if what == "pass":
        return t.Verdict_Pass()
    if what == "drop":
        return t.Verdict_Drop()
    if what == "replace":
        return t.Verdict_Replace(replacement(batch, i, change, processed_by={"S": PROCESSED_BY}))
    if what.startswith("route:"):
        return t.Verdict_Route([what.removeprefix("route:")])
    if what == "fan-out":
        copies = [replacement(batch, i, change, copy={"N": str(n)}) for n in (1, 2)]
        for n, copy in enumerate(copies, 1):
            copy.event_id = f"{batch.event_id(i)}-{n}"
        return t.Verdict_FanOut(copies)
    if what == "fail":
        return t.Verdict_Fail(f"asked to fail (action {what!r})")
    host.log(t.Level.WARN, f"unknown action {what!r}; passing record {batch.sequence_number(i)}")
    return t.Verdict_Pass()


class WitWorld(wit_world.WitWorld):
    def init(self, config: str) -> None:
        global PROCESSED_BY
        settings = json.loads(config)
        if not isinstance(settings, dict):
            raise Err("config must be a mapping")
        by = settings.get("processed_by", PROCESSED_BY)
        if not isinstance(by, str):
            raise Err(f"processed_by must be a string, got {by!r}")
        PROCESSED_BY = by

    def process(self, batch: t.Batch, changes: list[t.Change]) -> list[t.Verdict]:
        return [verdict(batch, i, change) for i, change in enumerate(changes)]
