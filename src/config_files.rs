//! The folders of one-file-per-thing TOML configuration (`devices/`, `alerts/`).

use std::path::{Path, PathBuf};

/// Returns `(file stem, path)` of every `*.toml` file in `dir`, sorted by name.
///
/// # Errors
/// Returns a one-line problem when the folder cannot be read.
pub(crate) fn toml_files(dir: &Path) -> Result<Vec<(String, PathBuf)>, String> {
    let entries = std::fs::read_dir(dir)
        .map_err(|error| format!("cannot read {}: {error}", dir.display()))?;
    let mut files: Vec<(String, PathBuf)> = entries
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .map(|path| {
            let stem = path
                .file_stem()
                .and_then(|stem| stem.to_str())
                .unwrap_or_default()
                .to_owned();
            (stem, path)
        })
        .collect();
    files.sort();
    Ok(files)
}
