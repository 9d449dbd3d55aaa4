//! What `assign` and `release` print: the devices that move and why, the plan, the outcome;
//! and the same as JSON (`passthru.assign/1`, `passthru.release/1`, docs/json-schema.md).

use std::io::Write;

use passthru_core::plan::executor::Report;
use passthru_linux::assign::{AssignPlan, DriverSource, MoveReason, ReleasePlan};
use serde_json::json;

use crate::output::{Failure, print_json_to, style};

fn list(addresses: impl IntoIterator<Item = String>) -> String {
    addresses.into_iter().collect::<Vec<_>>().join(", ")
}

fn assign_json(plan: &AssignPlan, outcome: &str, report: Option<&Report>) -> serde_json::Value {
    json!({
        "schema": "passthru.assign/1",
        "operation": plan.plan.operation,
        "outcome": outcome,
        "operation_id": report.map(|report| report.operation_id.clone()),
        "moves": plan.moves,
        "already_assigned": plan.already_assigned,
        "left_alone": plan.left_alone,
        "forced": plan.forced,
        "warnings": plan.warnings,
        "notes": plan.plan.notes,
        "steps": plan.plan.views(),
    })
}

fn release_json(plan: &ReleasePlan, outcome: &str, report: Option<&Report>) -> serde_json::Value {
    json!({
        "schema": "passthru.release/1",
        "operation": plan.plan.operation,
        "outcome": outcome,
        "operation_id": report.map(|report| report.operation_id.clone()),
        "returns": plan.returns,
        "already_released": plan.already_released.iter().map(|(device, driver)| json!({"device": device, "driver": driver})).collect::<Vec<_>>(),
        "notes": plan.plan.notes,
        "steps": plan.plan.views(),
    })
}

/// The devices that move, one line each.
pub(super) fn assign_header(out: &mut dyn Write, plan: &AssignPlan) {
    let _ = writeln!(
        out,
        "{}Give to vfio-pci:{}",
        style::HEADING,
        style::HEADING.render_reset()
    );
    for moved in &plan.moves {
        let why = match moved.why {
            MoveReason::Named => "named".to_owned(),
            MoveReason::SameCard { of } => format!("same card as {of}"),
            MoveReason::WithGroup { .. } => "--with-group".to_owned(),
        };
        let group = moved
            .iommu_group
            .map_or_else(String::new, |group| format!(", IOMMU group {group}"));
        let _ = writeln!(
            out,
            "  {}  {}  ({} → vfio-pci; {why}{group})",
            moved.device,
            moved.name,
            moved.driver.as_deref().unwrap_or("no driver"),
        );
    }
}

/// The plan's notes, one line each.
pub(super) fn notes(out: &mut dyn Write, notes: &[String]) {
    for note in notes {
        let _ = writeln!(
            out,
            "  {}note:{} {note}",
            style::DIM,
            style::DIM.render_reset()
        );
    }
}

/// `--dry-run`, or nothing to do.
pub(super) fn assign_plan(
    out: &mut dyn Write,
    json: bool,
    plan: &AssignPlan,
    dry_run: bool,
) -> Result<(), Failure> {
    let outcome = if plan.nothing_to_do() {
        "nothing-to-do"
    } else {
        "planned"
    };
    if json {
        let mut value = assign_json(plan, outcome, None);
        value["dry_run"] = json!(dry_run);
        return print_json_to(out, &value);
    }
    if plan.nothing_to_do() {
        notes(out, &plan.plan.notes);
        let _ = writeln!(
            out,
            "Nothing to do: {} {} on vfio-pci already.",
            list(plan.already_assigned.iter().map(ToString::to_string)),
            if plan.already_assigned.len() == 1 {
                "is"
            } else {
                "are"
            }
        );
        return Ok(());
    }
    assign_header(out, plan);
    let _ = write!(out, "{}", plan.plan.render());
    let _ = writeln!(out, "Dry run: nothing was changed.");
    Ok(())
}

/// After a successful assign.
pub(super) fn assigned(
    out: &mut dyn Write,
    json: bool,
    plan: &AssignPlan,
    report: &Report,
) -> Result<(), Failure> {
    if json {
        return print_json_to(out, &assign_json(plan, "applied", Some(report)));
    }
    let devices = list(plan.moves.iter().map(|m| m.device.to_string()));
    let nodes = list(
        plan.groups()
            .iter()
            .map(|group| format!("/dev/vfio/{group}")),
    );
    let first = plan
        .moves
        .iter()
        .find(|moved| moved.why == MoveReason::Named)
        .or(plan.moves.first())
        .map(|moved| moved.device.to_string())
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "{}Assigned{} (operation {}): {devices} on vfio-pci; {nodes} ready for a VM.",
        style::GOOD,
        style::GOOD.render_reset(),
        report.operation_id
    );
    let _ = writeln!(
        out,
        "Next: `passthru verify {first}` opens it the way QEMU will; `passthru release {first}` \
         or `passthru undo` gives it back."
    );
    Ok(())
}

/// The devices that go back, one line each.
pub(super) fn release_header(out: &mut dyn Write, plan: &ReleasePlan) {
    let _ = writeln!(
        out,
        "{}Give back to the host:{}",
        style::HEADING,
        style::HEADING.render_reset()
    );
    for back in &plan.returns {
        let source = match &back.source {
            DriverSource::Journal { operation } => format!("recorded by {operation}"),
            DriverSource::Modalias { .. } => "no record: from the module aliases".to_owned(),
            DriverSource::Unknown => "no record, no driver claims it".to_owned(),
        };
        let _ = writeln!(
            out,
            "  {}  {}  (vfio-pci → {}; {source})",
            back.device,
            back.name,
            back.driver.as_deref().unwrap_or("the kernel's choice"),
        );
    }
}

/// `--dry-run`, or nothing to do.
pub(super) fn release_plan(
    out: &mut dyn Write,
    json: bool,
    plan: &ReleasePlan,
    dry_run: bool,
) -> Result<(), Failure> {
    let outcome = if plan.nothing_to_do() {
        "nothing-to-do"
    } else {
        "planned"
    };
    if json {
        let mut value = release_json(plan, outcome, None);
        value["dry_run"] = json!(dry_run);
        return print_json_to(out, &value);
    }
    if plan.nothing_to_do() {
        notes(out, &plan.plan.notes);
        let _ = writeln!(out, "Nothing to do: the host has these devices already.");
        return Ok(());
    }
    release_header(out, plan);
    let _ = write!(out, "{}", plan.plan.render());
    let _ = writeln!(out, "Dry run: nothing was changed.");
    Ok(())
}

/// After a successful release.
pub(super) fn released(
    out: &mut dyn Write,
    json: bool,
    plan: &ReleasePlan,
    report: &Report,
) -> Result<(), Failure> {
    if json {
        return print_json_to(out, &release_json(plan, "released", Some(report)));
    }
    let back = list(plan.returns.iter().map(|back| match &back.driver {
        Some(driver) => format!("{} on {driver}", back.device),
        None => format!("{} (the kernel chose)", back.device),
    }));
    let _ = writeln!(
        out,
        "{}Released{} (operation {}): {back}.",
        style::GOOD,
        style::GOOD.render_reset(),
        report.operation_id
    );
    Ok(())
}
