//! Only dogs, built against `wit/v0.2.0` (eddy:processor@0.2.0, whose `change` has no
//! `event-source`): eddy must keep running components of that contract unchanged, images and all.

wit_bindgen::generate!({ path: "../../../wit/v0.2.0", world: "processor" });

use eddy::processor::types::Attribute;

struct OnlyDogs;

impl Guest for OnlyDogs {
    fn init(_config: String) -> Result<(), String> {
        Ok(())
    }

    fn process(batch: Vec<Change>) -> Vec<Verdict> {
        batch
            .iter()
            .map(|c| match c.new_image.as_ref().and_then(|i| i.get("species")) {
                Some(Attribute::S(s)) if s == "dog" => Verdict::Pass,
                _ => Verdict::Drop,
            })
            .collect()
    }
}

export!(OnlyDogs);
