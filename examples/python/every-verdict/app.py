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


def action(change: t.Change) -> str:
    """The record's `action`, read from the image without fetching the rest of it."""
    image = change.new_image or change.old_image
    value = image.get("action") if image else None
    return value.value if isinstance(value, t.Attribute_S) else "pass"


def replacement(change: t.Change, **added: dict) -> t.Replacement:
    """The change as a replacement, with `added` attributes (DynamoDB JSON) in its new image."""
    new = json.loads(change.new_image.to_json()) if change.new_image else None
    if new is not None:
        new.update(added)
    return t.Replacement(
        event_id=change.event_id,
        event_name=change.event_name,
        sequence_number=change.sequence_number,
        approximate_creation_time=change.approximate_creation_time,
        size_bytes=change.size_bytes,
        keys=change.keys,
        new_image=json.dumps(new) if new is not None else None,
        old_image=change.old_image.to_json() if change.old_image else None,
    )


def verdict(change: t.Change) -> t.Verdict:
    what = action(change)
    if what == "pass":
        return t.Verdict_Pass()
    if what == "drop":
        return t.Verdict_Drop()
    if what == "replace":
        return t.Verdict_Replace(replacement(change, processed_by={"S": PROCESSED_BY}))
    if what.startswith("route:"):
        return t.Verdict_Route([what.removeprefix("route:")])
    if what == "fan-out":
        copies = [replacement(change, copy={"N": str(n)}) for n in (1, 2)]
        for n, copy in enumerate(copies, 1):
            copy.event_id = f"{change.event_id}-{n}"
        return t.Verdict_FanOut(copies)
    if what == "fail":
        return t.Verdict_Fail(f"asked to fail (action {what!r})")
    host.log(t.Level.WARN, f"unknown action {what!r}; passing record {change.sequence_number}")
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

    def process(self, batch: list[t.Change]) -> list[t.Verdict]:
        return [verdict(change) for change in batch]
