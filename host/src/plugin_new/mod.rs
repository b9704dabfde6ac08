//! `eddy plugin new NAME --lang rust|python|js`: writes a ready-to-build processor project, like
//! `rpk transform init` or `smdk generate`: the contract (`wit/processor.wit`, copied from this
//! eddy), a filter that builds as it is (keep the records whose image has an attribute equal to a
//! configured value), a README with the build and `eddy plugin test` commands, and sample records.
//!
//! The templates live beside this file and are compiled into the binary, so the command works
//! without a source checkout.

use std::path::{Path, PathBuf};

use anyhow::Context;

/// The guest languages a project can be made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    /// Rust with wit-bindgen, built for `wasm32-wasip2` by cargo.
    Rust,
    /// Python, built with componentize-py.
    Python,
    /// JavaScript, built with componentize-js (npm).
    Js,
}

/// The contract every project gets a copy of.
const WIT: &str = include_str!("../../../wit/processor.wit");
/// Records to try a project on: a dog, a cat, and the dog's removal.
const SAMPLE: &str = include_str!("sample.jsonl");

/// The files of a `lang` project: (path in the project, template text).
fn templates(lang: Lang) -> Vec<(&'static str, &'static str)> {
    let mut files = match lang {
        Lang::Rust => vec![
            ("Cargo.toml", include_str!("rust/Cargo.toml")),
            ("src/lib.rs", include_str!("rust/lib.rs")),
            ("README.md", include_str!("rust/README.md")),
        ],
        Lang::Python => {
            vec![("app.py", include_str!("python/app.py")), ("README.md", include_str!("python/README.md"))]
        }
        Lang::Js => vec![
            ("app.js", include_str!("js/app.js")),
            ("package.json", include_str!("js/package.json")),
            ("README.md", include_str!("js/README.md")),
        ],
    };
    files.push(("wit/processor.wit", WIT));
    files.push(("sample.jsonl", SAMPLE));
    files
}

/// Writes the project of processor `name` in `lang` into `dir` (created; it must not exist or be
/// empty). Returns the files written, relative to `dir`.
///
/// # Errors
/// When `name` is not a lowercase name (`a-z`, `0-9`, `-`, starting with a letter), `dir` exists
/// and is not empty, or a file cannot be written.
pub fn create(name: &str, lang: Lang, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let valid = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-');
    if !valid {
        anyhow::bail!(
            "{name:?} is not a processor name: use lowercase letters, digits and `-`, starting with a letter (e.g. only-dogs)"
        );
    }
    if std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some()) {
        anyhow::bail!("{} exists and is not empty; choose another --dir", dir.display());
    }
    let file = name.replace('-', "_");
    let version = crate::wasm::CONTRACT_VERSION;
    let mut written = Vec::new();
    for (path, template) in templates(lang) {
        let text = template.replace("@NAME@", name).replace("@FILE@", &file).replace("@VERSION@", version);
        let target = dir.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&target, text).with_context(|| format!("cannot write {}", target.display()))?;
        written.push(PathBuf::from(path));
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_project_has_the_contract_the_samples_and_no_placeholder_left() {
        for lang in [Lang::Rust, Lang::Python, Lang::Js] {
            let dir = tempfile::tempdir().unwrap();
            let files = create("only-dogs", lang, &dir.path().join("p")).unwrap();
            assert!(files.contains(&PathBuf::from("wit/processor.wit")) && files.contains(&PathBuf::from("README.md")));
            for f in &files {
                let text = std::fs::read_to_string(dir.path().join("p").join(f)).unwrap();
                assert!(!text.contains("@NAME@") && !text.contains("@FILE@") && !text.contains("@VERSION@"), "{f:?}");
            }
            let readme = std::fs::read_to_string(dir.path().join("p/README.md")).unwrap();
            assert!(readme.contains("only_dogs.wasm") && readme.contains("eddy plugin test"), "{readme}");
            assert!(readme.contains(&format!("eddy:processor@{}", crate::wasm::CONTRACT_VERSION)), "{readme}");
        }
    }

    #[test]
    fn bad_names_and_non_empty_folders_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for bad in ["Dogs", "1dogs", "dogs_", "dogs-", "", "a b"] {
            assert!(create(bad, Lang::Rust, &dir.path().join("x")).is_err(), "{bad:?}");
        }
        std::fs::write(dir.path().join("taken"), "").unwrap();
        let err = create("dogs", Lang::Js, dir.path()).unwrap_err().to_string();
        assert!(err.contains("exists and is not empty"), "{err}");
    }
}
