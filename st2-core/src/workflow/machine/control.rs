//! Pause, resume and cancel of a workflow, and tasks whose action is suspended (an inquiry
//! waiting for its response, a nested workflow paused). See the transition table in
//! [`super`].

use std::collections::BTreeSet;

use serde_json::Value;

use super::{Command, TaskStatus, Work, Workflow, WorkflowStatus};

impl Workflow {
    /// Records held by the pause (they have no action running): the held runs and the
    /// with-items records waiting to start more items.
    fn held_records(&self) -> BTreeSet<usize> {
        let h = &self.state.header;
        h.held
            .iter()
            .filter_map(|w| match w {
                Work::Run(id) => Some(*id),
                _ => None,
            })
            .chain(h.items_waiting.iter().copied())
            .collect()
    }

    /// Whether record `id` is held by the pause.
    pub(super) fn held_records_contain(&self, id: usize) -> bool {
        self.held_records().contains(&id)
    }

    /// Resume: held work runs again, tasks whose action paused are running again (the service
    /// resumes those actions). A task still pending keeps the workflow paused.
    pub(super) fn resume(&mut self, cmds: &mut Vec<Command>) {
        if !matches!(
            self.state.header.status,
            WorkflowStatus::Paused | WorkflowStatus::Pausing
        ) {
            return;
        }
        let held = self.held_records();
        self.set_status(WorkflowStatus::Running, cmds);
        for id in 0..self.state.records.len() {
            if self.state.records[id].status == TaskStatus::Paused && !held.contains(&id) {
                self.set_record_status(id, TaskStatus::Running);
            }
        }
        self.queue
            .extend(std::mem::take(&mut self.state.header.held));
        for id in std::mem::take(&mut self.state.header.items_waiting) {
            if self.state.records[id].status == TaskStatus::Paused {
                self.set_record_status(id, TaskStatus::Running);
            }
            self.start_items(id, cmds);
        }
    }

    /// Cancel: held work is dropped (its records canceled), running and suspended actions are
    /// canceled (the workflow ends once they report back).
    pub(super) fn cancel(&mut self, cmds: &mut Vec<Command>) {
        if matches!(
            self.state.header.status,
            WorkflowStatus::Canceled | WorkflowStatus::Succeeded | WorkflowStatus::Failed
        ) {
            return;
        }
        let held = self.held_records();
        self.set_status(WorkflowStatus::Canceling, cmds);
        self.state.header.held.clear();
        self.state.header.items_waiting.clear();
        for id in 0..self.state.records.len() {
            let r = &self.state.records[id];
            let suspended =
                matches!(r.status, TaskStatus::Paused | TaskStatus::Pending) && !held.contains(&id);
            if r.status == TaskStatus::Running || suspended {
                if suspended {
                    // Active again until its action reports how it ended.
                    self.set_record_status(id, TaskStatus::Running);
                }
                let r = &self.state.records[id];
                cmds.push(Command::CancelTask {
                    task: r.task.clone(),
                    instance: id,
                });
            } else if matches!(r.status, TaskStatus::Delayed | TaskStatus::Paused) {
                self.queue
                    .push_back(Work::Complete(id, TaskStatus::Canceled, Value::Null));
            }
        }
    }

    /// The action of record `id` went pending (`status` [`TaskStatus::Pending`]) or paused
    /// ([`TaskStatus::Paused`]). A pending task pauses the workflow; a paused one pauses it
    /// once nothing else is active (see [`Workflow::settle`]).
    pub(super) fn action_suspended(
        &mut self,
        id: usize,
        status: TaskStatus,
        cmds: &mut Vec<Command>,
    ) {
        let Some(r) = self.state.records.get(id) else {
            return;
        };
        if r.status != TaskStatus::Running || r.items.is_some() {
            return;
        }
        self.set_record_status(id, status);
        if status == TaskStatus::Pending && self.state.header.status == WorkflowStatus::Running {
            self.set_status(WorkflowStatus::Pausing, cmds);
        }
    }

    /// Whether a task waits with its action suspended (pending or paused), which keeps a
    /// workflow with nothing active from ending.
    pub(super) fn has_suspended(&self) -> bool {
        let held = self.held_records();
        self.state.records.iter().any(|r| {
            r.status == TaskStatus::Pending
                || (r.status == TaskStatus::Paused && !held.contains(&r.instance))
        })
    }
}
