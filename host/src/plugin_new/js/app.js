// @NAME@: an eddy processor in JavaScript.
//
// Keeps the records whose image has the attribute `attribute` (an `S` value) equal to `equals`,
// and drops the rest; a REMOVE is judged by its old image, so deleting a kept item reaches the
// sinks too. Config (the processor's `config:` in the pipeline YAML, as JSON):
// {"attribute": "species", "equals": "dog"} (the defaults).
//
// From JavaScript, `process(batch, changes)` gets each record's fixed-size fields in `changes`
// (objects with camelCase fields: eventName, hasNewImage, ...) and reads the rest from `batch` by
// the record's index: batch.get(index, "new-image", name), batch.toJson(index, "old-image"),
// batch.eventId(index), batch.keys(index). Variants are {tag, val}, enums are strings, s64/u64
// are BigInts. Throw from init to refuse the config.

let attribute = "species";
let equals = "dog";

export function init(config) {
  const settings = JSON.parse(config);
  if (settings === null || typeof settings !== "object" || Array.isArray(settings)) {
    throw "config must be a mapping";
  }
  // A mistyped key must not be ignored silently ({"species": "cat"} would keep the dogs).
  for (const key of Object.keys(settings)) {
    if (key !== "attribute" && key !== "equals") {
      throw `unknown config key \`${key}\` (known: \`attribute\`, \`equals\`)`;
    }
  }
  for (const key of ["attribute", "equals"]) {
    if (key in settings && typeof settings[key] !== "string") {
      throw `\`${key}\` must be a string, got ${JSON.stringify(settings[key])}`;
    }
  }
  attribute = settings.attribute ?? attribute;
  equals = settings.equals ?? equals;
}

export function process(batch, changes) {
  return changes.map((change, index) => {
    // Only this one attribute crosses the boundary, not the whole image or record.
    const value = batch.get(index, change.hasNewImage ? "new-image" : "old-image", attribute);
    return value && value.tag === "s" && value.val === equals ? { tag: "pass" } : { tag: "drop" };
  });
}
