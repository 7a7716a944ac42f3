//! Re-running a finished workflow from some of its tasks (StackStorm's
//! `st2 execution re-run <id> --tasks t1,t2`): the state of the original run is kept, each named
//! task runs again with the context it had, and the workflow goes on from there.

use std::collections::BTreeSet;

use super::{Command, TaskStatus, Work, Workflow, WorkflowStatus};

impl Workflow {
    /// Re-runs the finished workflow from `tasks`: for each, its latest instance runs again
    /// in a new record with that instance's context; the workflow is running again, errors of
    /// the re-run tasks are dropped. `reset` names with-items tasks whose items all run again
    /// (every with-items task re-runs all its items here). Errors name tasks that are unknown,
    /// never ran or are still active.
    pub fn rerun(&mut self, tasks: &[String], reset: &[String]) -> Result<Vec<Command>, String> {
        let _ = reset;
        if !self.state.header.finished {
            return Err(
                "the workflow has not finished: only a completed workflow can be re-run".into(),
            );
        }
        let mut picked = Vec::new();
        let mut missing = Vec::new();
        for name in tasks {
            let latest = self
                .state
                .records
                .iter()
                .rev()
                .find(|r| &r.task == name && self.spec.task(name).is_some());
            match latest {
                Some(r) if r.status.is_active() => {
                    return Err(format!("task \"{name}\" is still {}", r.status.as_str()));
                }
                Some(r) => picked.push((r.instance, name.clone(), r.ctx.clone())),
                None => missing.push(name.clone()),
            }
        }
        if !missing.is_empty() {
            return Err(format!(
                "Unable to rerun workflow because one or more requested tasks is not found: {}",
                missing.join(", ")
            ));
        }
        let names: BTreeSet<&String> = tasks.iter().collect();
        let h = &mut self.state.header;
        h.status = WorkflowStatus::Running;
        h.finished = false;
        h.timed_out = false;
        h.output = None;
        h.held.clear();
        h.items_waiting.clear();
        h.errors.retain(|e| {
            e.get("task_id")
                .and_then(|t| t.as_str())
                .is_some_and(|t| !names.contains(&t.to_string()))
        });
        // Terminal contexts of the first run no longer end the workflow; what the re-run
        // reaches does.
        for r in &mut self.state.records {
            if r.term && r.status != TaskStatus::Succeeded || names.contains(&r.task) {
                r.term = false;
            }
        }
        for id in 0..self.state.records.len() {
            self.dirty.insert(id);
        }
        for (_, task, ctx) in picked {
            self.queue.push_back(Work::Stage {
                task,
                ctx,
                run_on_fail: false,
            });
        }
        let mut cmds = Vec::new();
        self.drain(&mut cmds);
        Ok(cmds)
    }
}
