// An eddy processor in JavaScript that shows every verdict kind, the twin of
// examples/python/every-verdict and tests/plugins/every-verdict (Rust).
//
// Each record says what should happen to it in its image's `action` attribute (the new image, or
// the old one for a REMOVE):
//
// - absent or `pass`: forward it unchanged
// - `drop`: forward it nowhere
// - `replace`: forward it with `processed_by` added to the new image
// - `route:NAME`: forward it only to the route's sink NAME
// - `fan-out`: forward two copies, `copy` 1 and 2, instead of it
// - `fail`: send it to the dead letter
//
// `config: {processed_by: NAME}` sets the value `replace` writes (default `js`).
//
// Build (from this folder; see README.md): npm install && npm run build
//
// The contract's types in JavaScript (componentize-js / jco conventions): `process(batch, changes)`
// gets each record's fixed-size fields in `changes` (objects with camelCase fields: `eventName`,
// `hasNewImage`, ...) and reads the rest from `batch` by the record's index (`batch.eventId(i)`,
// `batch.keys(i)`, `batch.get(i, "new-image", name)`, `batch.toJson(i, "old-image")`); variants
// are `{tag, val}`, enums are strings, `s64`/`u64` are BigInts. `init` refuses its config by
// throwing.

import { log } from "eddy:processor/host@0.4.0";

let processedBy = "js";

/** The record's `action`, read from its image without fetching the rest of the record. */
function action(batch, i, change) {
  const value = batch.get(i, change.hasNewImage ? "new-image" : "old-image", "action");
  return value && value.tag === "s" ? value.val : "pass";
}

/** The change as a replacement, with `added` attributes (DynamoDB JSON) in its new image. */
function replacement(batch, i, change, added) {
  let newImage;
  if (change.hasNewImage) {
    newImage = JSON.stringify({ ...JSON.parse(batch.toJson(i, "new-image")), ...added });
  }
  return {
    eventId: batch.eventId(i),
    eventName: change.eventName,
    sequenceNumber: batch.sequenceNumber(i),
    approximateCreationTime: change.approximateCreationTime,
    sizeBytes: change.sizeBytes,
    keys: batch.keys(i),
    newImage,
    oldImage: change.hasOldImage ? batch.toJson(i, "old-image") : undefined,
  };
}

function verdict(batch, i, change) {
  const what = action(batch, i, change);
  if (what === "pass") return { tag: "pass" };
  if (what === "drop") return { tag: "drop" };
  if (what === "replace") return { tag: "replace", val: replacement(batch, i, change, { processed_by: { S: processedBy } }) };
  if (what.startsWith("route:")) return { tag: "route", val: [what.slice("route:".length)] };
  if (what === "fan-out") {
    const copies = [1, 2].map((n) => ({ ...replacement(batch, i, change, { copy: { N: String(n) } }), eventId: `${batch.eventId(i)}-${n}` }));
    return { tag: "fan-out", val: copies };
  }
  if (what === "fail") return { tag: "fail", val: `asked to fail (action '${what}')` };
  log("warn", `unknown action '${what}'; passing record ${batch.sequenceNumber(i)}`);
  return { tag: "pass" };
}

export function init(config) {
  const settings = JSON.parse(config);
  if (settings === null || typeof settings !== "object" || Array.isArray(settings)) {
    throw "config must be a mapping";
  }
  const by = settings.processed_by ?? processedBy;
  if (typeof by !== "string") {
    throw `processed_by must be a string, got ${JSON.stringify(by)}`;
  }
  processedBy = by;
}

export function process(batch, changes) {
  return changes.map((change, i) => verdict(batch, i, change));
}
