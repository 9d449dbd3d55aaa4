//! Runs plans: journal first, then act, then verify; roll back on any failure.

use super::journal::{Event, Journal, JournalError, Operation, Outcome, UndoReason, WRITER};
use super::{Plan, Step, StepError, StepView};

/// Progress reports, for the CLI to print as the work happens.
#[derive(Debug, Clone, Copy)]
pub enum Progress<'a> {
    /// Step `index` of `total` starts.
    Applying {
        /// Step index (0-based).
        index: usize,
        /// Number of steps.
        total: usize,
        /// The step.
        view: &'a StepView,
    },
    /// Step `index` applied and verified.
    Applied {
        /// Step index.
        index: usize,
    },
    /// Step `index` failed; rollback follows.
    Failed {
        /// Step index.
        index: usize,
        /// Why.
        error: &'a StepError,
    },
    /// Step `index` is being undone.
    Undoing {
        /// Step index.
        index: usize,
        /// The step.
        view: &'a StepView,
    },
    /// Step `index` was undone.
    Undone {
        /// Step index.
        index: usize,
    },
    /// Undoing step `index` failed.
    UndoFailed {
        /// Step index.
        index: usize,
        /// Why.
        error: &'a StepError,
    },
}

/// Where a fault-injection test wants the "process" to die. The executor stops right there
/// without rolling back, exactly as after a crash or power loss; the journal is left as such a
/// death would leave it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    /// After step `n`'s intent record, before it acts.
    BeforeApply(usize),
    /// After step `n` acted, before it is verified and recorded done.
    AfterApply(usize),
}

/// Options for [`apply`].
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    /// Simulated crash, for fault-injection tests.
    pub crash: Option<CrashPoint>,
}

/// What an apply or undo achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The operation's id in the journal.
    pub operation_id: String,
    /// How it ended.
    pub outcome: Outcome,
    /// Errors met while undoing (empty when everything was restored).
    pub undo_errors: Vec<(usize, StepError)>,
}

/// Why a plan did not apply.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The journal could not be written; nothing after the failing record was done.
    #[error("could not write the journal")]
    Journal(#[from] JournalError),
    /// A step could not be serialized for the journal.
    #[error("could not record step {index} in the journal: {message}")]
    Encode {
        /// Step index.
        index: usize,
        /// Serializer message.
        message: String,
    },
    /// A step failed; the operation was rolled back (see `rollback`).
    #[error("step {} failed: {error}", index + 1)]
    StepFailed {
        /// Failing step index.
        index: usize,
        /// The step's error.
        error: StepError,
        /// The rollback that followed.
        rollback: Report,
    },
    /// A simulated crash (fault-injection tests only).
    #[error("simulated crash at {0:?}")]
    Crashed(CrashPoint),
    /// The journal names a step that this build cannot decode.
    #[error("the journal's step {index} of operation `{operation}` cannot be read: {message}")]
    Decode {
        /// Operation id.
        operation: String,
        /// Step index.
        index: usize,
        /// Decoder message.
        message: String,
    },
}

/// Applies `plan` through `host`, journaling every step before it acts.
pub fn apply<S: Step>(
    journal: &mut Journal,
    plan: &Plan<S>,
    host: &mut S::Host,
    options: &ExecOptions,
    observer: &mut dyn FnMut(Progress<'_>),
) -> Result<Report, ExecError> {
    let operation_id = Journal::new_operation_id();
    let mut encoded = Vec::with_capacity(plan.steps.len());
    for (index, step) in plan.steps.iter().enumerate() {
        encoded.push(
            serde_json::to_value(step).map_err(|error| ExecError::Encode {
                index,
                message: error.to_string(),
            })?,
        );
    }
    let views = plan.views();
    journal.append(
        &operation_id,
        Event::Begin {
            kind: S::KIND.to_owned(),
            operation: plan.operation.clone(),
            steps: encoded,
            views: views.clone(),
            writer: Some(WRITER.to_owned()),
        },
    )?;
    let total = plan.steps.len();
    for (index, step) in plan.steps.iter().enumerate() {
        observer(Progress::Applying {
            index,
            total,
            view: &views[index],
        });
        journal.append(&operation_id, Event::Intent { index })?;
        if options.crash == Some(CrashPoint::BeforeApply(index)) {
            return Err(ExecError::Crashed(CrashPoint::BeforeApply(index)));
        }
        let applied = step.apply(host);
        if applied.is_ok() && options.crash == Some(CrashPoint::AfterApply(index)) {
            return Err(ExecError::Crashed(CrashPoint::AfterApply(index)));
        }
        match applied.and_then(|()| step.verify(host)) {
            Ok(()) => {
                journal.append(&operation_id, Event::Done { index })?;
                observer(Progress::Applied { index });
            }
            Err(error) => {
                journal.append(
                    &operation_id,
                    Event::Failed {
                        index,
                        error: error.message.clone(),
                    },
                )?;
                observer(Progress::Failed {
                    index,
                    error: &error,
                });
                let pending: Vec<usize> = (0..=index).rev().collect();
                let rollback = undo_steps(
                    journal,
                    &operation_id,
                    &plan.steps,
                    &views,
                    &pending,
                    host,
                    UndoReason::Rollback,
                    observer,
                )?;
                return Err(ExecError::StepFailed {
                    index,
                    error,
                    rollback,
                });
            }
        }
    }
    journal.append(
        &operation_id,
        Event::Finished {
            outcome: Outcome::Applied,
        },
    )?;
    Ok(Report {
        operation_id,
        outcome: Outcome::Applied,
        undo_errors: Vec::new(),
    })
}

/// Undoes a journaled operation (applied, interrupted, or partly undone) through `host`.
pub fn undo<S: Step>(
    journal: &mut Journal,
    operation: &Operation,
    host: &mut S::Host,
    observer: &mut dyn FnMut(Progress<'_>),
) -> Result<Report, ExecError> {
    let steps = decode_steps::<S>(operation)?;
    undo_steps(
        journal,
        &operation.id,
        &steps,
        &operation.views,
        &operation.pending_undo(),
        host,
        UndoReason::Undo,
        observer,
    )
}

/// Decodes the steps of a journaled operation.
pub fn decode_steps<S: Step>(operation: &Operation) -> Result<Vec<S>, ExecError> {
    operation
        .steps
        .iter()
        .enumerate()
        .map(|(index, value)| {
            serde_json::from_value(value.clone()).map_err(|error| ExecError::Decode {
                operation: operation.id.clone(),
                index,
                message: error.to_string(),
            })
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn undo_steps<S: Step>(
    journal: &mut Journal,
    operation_id: &str,
    steps: &[S],
    views: &[StepView],
    pending: &[usize],
    host: &mut S::Host,
    reason: UndoReason,
    observer: &mut dyn FnMut(Progress<'_>),
) -> Result<Report, ExecError> {
    journal.append(operation_id, Event::UndoBegin { reason })?;
    let mut undo_errors = Vec::new();
    // Keep going after a failure: restoring as much as possible beats stopping half-way.
    for &index in pending {
        let Some(step) = steps.get(index) else {
            continue;
        };
        let fallback_view = StepView::new(format!("step {}", index + 1));
        observer(Progress::Undoing {
            index,
            view: views.get(index).unwrap_or(&fallback_view),
        });
        match step.undo(host) {
            Ok(()) => {
                journal.append(operation_id, Event::Undone { index })?;
                observer(Progress::Undone { index });
            }
            Err(error) => {
                journal.append(
                    operation_id,
                    Event::UndoFailed {
                        index,
                        error: error.message.clone(),
                    },
                )?;
                observer(Progress::UndoFailed {
                    index,
                    error: &error,
                });
                undo_errors.push((index, error));
            }
        }
    }
    let outcome = match (undo_errors.is_empty(), reason) {
        (false, _) => Outcome::UndoIncomplete,
        (true, UndoReason::Rollback) => Outcome::RolledBack,
        (true, UndoReason::Undo) => Outcome::Undone,
    };
    journal.append(operation_id, Event::Finished { outcome })?;
    Ok(Report {
        operation_id: operation_id.to_owned(),
        outcome,
        undo_errors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::journal::OperationState;
    use serde::{Deserialize, Serialize};
    use std::collections::BTreeMap;

    /// A toy host: a key-value store. Steps set a key and remember the old value.
    #[derive(Debug, Default)]
    struct Store {
        values: BTreeMap<String, String>,
        fail_on: Option<String>,
    }

    #[derive(Debug, Clone, Serialize, Deserialize)]
    struct SetKey {
        key: String,
        value: String,
        before: Option<String>,
    }

    impl Step for SetKey {
        type Host = Store;
        const KIND: &'static str = "test-store";

        fn view(&self) -> StepView {
            StepView::new(format!("set {} to {}", self.key, self.value))
        }

        fn apply(&self, host: &mut Store) -> Result<(), StepError> {
            if host.fail_on.as_deref() == Some(self.key.as_str()) {
                host.values.insert(self.key.clone(), "half-written".into());
                return Err(StepError::new(format!("cannot set {}", self.key)));
            }
            host.values.insert(self.key.clone(), self.value.clone());
            Ok(())
        }

        fn verify(&self, host: &mut Store) -> Result<(), StepError> {
            match host.values.get(&self.key) {
                Some(value) if *value == self.value => Ok(()),
                _ => Err(StepError::new("not set")),
            }
        }

        fn undo(&self, host: &mut Store) -> Result<(), StepError> {
            match &self.before {
                Some(value) => host.values.insert(self.key.clone(), value.clone()),
                None => host.values.remove(&self.key),
            };
            Ok(())
        }
    }

    fn plan_for(store: &Store, changes: &[(&str, &str)]) -> Plan<SetKey> {
        let mut plan = Plan::new("test");
        for (key, value) in changes {
            plan.steps.push(SetKey {
                key: (*key).into(),
                value: (*value).into(),
                before: store.values.get(*key).cloned(),
            });
        }
        plan
    }

    fn initial() -> Store {
        let mut store = Store::default();
        store.values.insert("a".into(), "1".into());
        store.values.insert("b".into(), "2".into());
        store
    }

    #[test]
    fn applies_then_undo_restores_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::open(dir.path()).unwrap();
        let mut store = initial();
        let plan = plan_for(&store, &[("a", "x"), ("c", "y")]);
        let report = apply(
            &mut journal,
            &plan,
            &mut store,
            &ExecOptions::default(),
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(report.outcome, Outcome::Applied);
        assert_eq!(store.values["a"], "x");

        let operation = journal.last_undoable().unwrap().unwrap();
        assert_eq!(operation.state, OperationState::Applied);
        undo::<SetKey>(&mut journal, &operation, &mut store, &mut |_| {}).unwrap();
        assert_eq!(store.values, initial().values);
        assert!(journal.last_undoable().unwrap().is_none());
    }

    #[test]
    fn failure_rolls_back_every_touched_step() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::open(dir.path()).unwrap();
        let mut store = initial();
        store.fail_on = Some("b".into());
        let plan = plan_for(&store, &[("a", "x"), ("b", "y"), ("c", "z")]);
        let error = apply(
            &mut journal,
            &plan,
            &mut store,
            &ExecOptions::default(),
            &mut |_| {},
        )
        .unwrap_err();
        match error {
            ExecError::StepFailed {
                index, rollback, ..
            } => {
                assert_eq!(index, 1);
                assert_eq!(rollback.outcome, Outcome::RolledBack);
            }
            other => panic!("unexpected {other:?}"),
        }
        store.fail_on = None;
        assert_eq!(store.values, initial().values);
        let operations = journal.operations().unwrap();
        assert_eq!(operations[0].state, OperationState::RolledBack);
    }

    #[test]
    fn a_crash_at_any_point_is_recoverable_by_undo() {
        let steps = [("a", "x"), ("b", "y"), ("c", "z")];
        for index in 0..steps.len() {
            for crash in [
                CrashPoint::BeforeApply(index),
                CrashPoint::AfterApply(index),
            ] {
                let dir = tempfile::tempdir().unwrap();
                let mut store = initial();
                let plan = plan_for(&store, &steps);
                {
                    let mut journal = Journal::open(dir.path()).unwrap();
                    let options = ExecOptions { crash: Some(crash) };
                    let error = apply(&mut journal, &plan, &mut store, &options, &mut |_| {});
                    assert!(matches!(error, Err(ExecError::Crashed(_))));
                }
                // A new process finds the interrupted operation and undoes it.
                let mut journal = Journal::open(dir.path()).unwrap();
                let operation = journal.last_undoable().unwrap().unwrap();
                assert_eq!(operation.state, OperationState::Interrupted, "{crash:?}");
                undo::<SetKey>(&mut journal, &operation, &mut store, &mut |_| {}).unwrap();
                assert_eq!(store.values, initial().values, "{crash:?}");
            }
        }
    }
}
