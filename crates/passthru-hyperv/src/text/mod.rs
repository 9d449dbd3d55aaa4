//! Parsers for the text Windows prints: `Format-List` listings, location paths, instance ids,
//! WMI object paths and SurveyDDA output. None of them panics or fails on odd input: what they
//! cannot read they skip or report as an error value.

pub mod format_list;
pub mod instance;
pub mod location;
pub mod survey_dda;
pub mod wmi_path;
