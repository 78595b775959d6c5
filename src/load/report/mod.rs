//! Reports of a run: the merged results (`model`) and the formats they render to: the stdout
//! summary, `.hgrm` (percentile spectrum), `.hlog` (interval log), JSON (with its schema), SVG,
//! `--fail-if` checks and `compare` of two JSON reports.

pub mod compare;
pub mod failif;
pub mod hgrm;
pub mod hlog;
pub mod json;
pub mod json_schema;
pub mod model;
pub mod summary;
pub mod svg;
pub mod units;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use crate::load::plan::Outputs;
use crate::load::short_error;

use model::RunReport;

/// Writes every output file `outputs` names (.hgrm, .hlog, JSON, SVG). Stops at the first
/// failure, with an error that names the path.
pub fn write_outputs(r: &RunReport, outputs: &Outputs) -> Result<(), String> {
    if let Some(p) = &outputs.hgrm {
        write_file(p, "hgrm", |w| hgrm::write_hgrm(&r.latency, w))?;
    }
    if let Some(p) = &outputs.hlog {
        write_file(p, "hlog", |w| hlog::write_hlog(r, w))?;
    }
    if let Some(p) = &outputs.json {
        write_file(p, "JSON", |w| w.write_all(json::to_json(r).as_bytes()))?;
    }
    if let Some(p) = &outputs.svg {
        write_file(p, "SVG", |w| w.write_all(svg::to_svg(r).as_bytes()))?;
    }
    Ok(())
}

fn write_file(
    path: &Path,
    what: &str,
    f: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> Result<(), String> {
    let fail = |e: std::io::Error| {
        format!(
            "cannot write {what} to {}: {}",
            path.display(),
            short_error(&e)
        )
    };
    let file = File::create(path).map_err(fail)?;
    let mut w = BufWriter::new(file);
    f(&mut w).map_err(fail)?;
    // No fsync: the path may be a pipe or /dev/stdout.
    w.flush().map_err(fail)
}
