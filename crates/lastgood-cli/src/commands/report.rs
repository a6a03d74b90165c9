//! report: the incident record of one operation, as Markdown or JSON.
//!
//! `--format` is the global flag: `text` (the default) prints the record's Markdown,
//! which is its text form, and `json` the same content as one document. `--note TEXT`
//! first appends a note to the record's follow-up.

use lastgood_core::Result;
use lastgood_core::engine::Engine;
use lastgood_core::view::IncidentReport;

use crate::args::{Cli, Format};
use crate::output;

pub fn report(cli: &Cli, engine: &Engine, operation: u64, note: Option<&str>) -> Result<i32> {
    if let Some(text) = note {
        engine.note(operation, text)?;
    }
    let record = IncidentReport::build(engine.ledger(), &engine.config, operation)?;
    match cli.global.format {
        Format::Json => output::json(&record),
        Format::Text => output::out(&record.markdown()),
    }
    Ok(0)
}
