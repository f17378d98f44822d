// TEMPORARY STUB (being written by a helper)
use std::path::Path;
pub struct Rendered {
    pub text: String,
    pub warnings: Vec<String>,
}
pub fn render_file(path: &Path, _context: &serde_json::Value) -> anyhow::Result<Rendered> {
    Ok(Rendered {
        text: std::fs::read_to_string(path)?,
        warnings: vec![],
    })
}
