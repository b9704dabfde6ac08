//! A passthrough built for an older contract version (eddy:processor@0.1.0): eddy must refuse to
//! load it, naming both versions.

wit_bindgen::generate!({ path: "wit", world: "processor" });

struct WrongVersion;

impl Guest for WrongVersion {
    fn init(_config: String) -> Result<(), String> {
        Ok(())
    }

    fn process(batch: Vec<Change>) -> Vec<Verdict> {
        batch.iter().map(|_| Verdict::Pass).collect()
    }
}

export!(WrongVersion);
