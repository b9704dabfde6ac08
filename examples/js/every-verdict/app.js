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
// The contract's types in JavaScript (componentize-js / jco conventions): records are objects with
// camelCase fields, variants are `{tag, val}`, enums are strings, `s64`/`u64` are BigInts, an
// `image` is an object with `get(name)`, `names()` and `toJson()`. `init` refuses its config by
// throwing.

import { log } from "eddy:processor/host@0.3.0";

let processedBy = "js";

/** The record's `action`, read from the image without fetching the rest of it. */
function action(change) {
  const image = change.newImage ?? change.oldImage;
  const value = image ? image.get("action") : undefined;
  return value && value.tag === "s" ? value.val : "pass";
}

/** The change as a replacement, with `added` attributes (DynamoDB JSON) in its new image. */
function replacement(change, added) {
  let newImage;
  if (change.newImage) {
    newImage = JSON.stringify({ ...JSON.parse(change.newImage.toJson()), ...added });
  }
  return {
    eventId: change.eventId,
    eventName: change.eventName,
    sequenceNumber: change.sequenceNumber,
    approximateCreationTime: change.approximateCreationTime,
    sizeBytes: change.sizeBytes,
    keys: change.keys,
    newImage,
    oldImage: change.oldImage ? change.oldImage.toJson() : undefined,
  };
}

function verdict(change) {
  const what = action(change);
  if (what === "pass") return { tag: "pass" };
  if (what === "drop") return { tag: "drop" };
  if (what === "replace") return { tag: "replace", val: replacement(change, { processed_by: { S: processedBy } }) };
  if (what.startsWith("route:")) return { tag: "route", val: [what.slice("route:".length)] };
  if (what === "fan-out") {
    const copies = [1, 2].map((n) => ({ ...replacement(change, { copy: { N: String(n) } }), eventId: `${change.eventId}-${n}` }));
    return { tag: "fan-out", val: copies };
  }
  if (what === "fail") return { tag: "fail", val: `asked to fail (action '${what}')` };
  log("warn", `unknown action '${what}'; passing record ${change.sequenceNumber}`);
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

export function process(batch) {
  return batch.map(verdict);
}
