//! What happens when a task instance completes: retry, transitions (`when`, `publish`,
//! `do`), engine commands, and arrivals at joins. See the transition table in [`super`].

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};

use super::{
    error_entry, Barrier, Command, TaskRecord, TaskStatus, Work, Workflow, WorkflowStatus,
};
use crate::workflow::expr::{self, TaskView};
use crate::workflow::spec::Join;

impl Workflow {
    pub(super) fn view<'a>(&self, r: &'a TaskRecord) -> TaskView<'a> {
        TaskView {
            id: &r.task,
            route: r.route,
            status: Some(r.status.as_str()),
            result: r.result.as_ref(),
        }
    }

    pub(super) fn complete(
        &mut self,
        id: usize,
        status: TaskStatus,
        result: Value,
        cmds: &mut Vec<Command>,
    ) {
        let current = self.state.records[id].status;
        if !(current.is_active() || current == TaskStatus::Paused) {
            return;
        }
        let spec = self.spec.clone();
        let task = self.state.records[id].task.clone();
        let Some(task_spec) = spec.task(&task) else {
            return;
        };
        if status == TaskStatus::Failed {
            let entry = json!({
                "type": "error",
                "message": "Execution failed. See result for details.",
                "task_id": task,
                "result": result,
            });
            self.log(entry, cmds);
        }
        self.state.records[id].result = Some(result);
        self.set_record_status(id, status);
        let r = &self.state.records[id];

        // Retry: the same record runs again.
        let workflow_active = matches!(
            self.state.header.status,
            WorkflowStatus::Running | WorkflowStatus::Pausing
        );
        if let (Some(retry), true) = (&task_spec.retry, workflow_active) {
            if status != TaskStatus::Canceled && r.retry_tally < r.retry_count {
                let retry_now = match &retry.when {
                    None => Ok(status == TaskStatus::Failed),
                    Some(when) => {
                        let scope = self.scope_for(&r.ctx, Some(self.view(r)), None);
                        expr::evaluate(when, &scope).map(|v| expr::truthy(&v))
                    }
                };
                match retry_now {
                    Ok(true) => {
                        let delay = r.retry_delay;
                        let rec = &mut self.state.records[id];
                        rec.retry_tally += 1;
                        rec.items = None;
                        rec.result = None;
                        self.set_record_status(id, TaskStatus::Delayed);
                        if delay > 0 {
                            cmds.push(Command::ScheduleTimer {
                                task,
                                instance: id,
                                delay,
                            });
                        } else {
                            self.queue.push_back(Work::Run(id));
                        }
                        return;
                    }
                    Ok(false) => {}
                    Err(e) => {
                        let tr = Some(format!("{task}__retry"));
                        self.log(error_entry(&e, Some(&task), tr), cmds);
                        self.fail(cmds);
                        return;
                    }
                }
            }
        }
        if status == TaskStatus::Canceled {
            if matches!(
                self.state.header.status,
                WorkflowStatus::Running | WorkflowStatus::Pausing
            ) {
                self.set_status(WorkflowStatus::Canceling, cmds);
            }
            return;
        }
        let follows = match self.state.header.status {
            WorkflowStatus::Running | WorkflowStatus::Pausing | WorkflowStatus::Paused => true,
            WorkflowStatus::Failed => r.run_on_fail,
            _ => false,
        };
        if !follows {
            return;
        }

        let mut remediated = false;
        let mut manual_fail = false;
        let mut next_work = Vec::new();
        let mut engine = Vec::new();
        for (i, tr) in task_spec.next.iter().enumerate() {
            let r = &self.state.records[id];
            let first = tr.next.first().map_or("continue", String::as_str);
            let transition_id = format!("{first}__t{i}");
            let taken = match &tr.when {
                None => Ok(true),
                Some(when) => {
                    let scope = self.scope_for(&r.ctx, Some(self.view(r)), None);
                    expr::evaluate(when, &scope).map(|v| expr::truthy(&v))
                }
            };
            let taken = match taken {
                Ok(t) => t,
                Err(e) => {
                    self.log(error_entry(&e, Some(&task), Some(transition_id)), cmds);
                    self.fail(cmds);
                    continue;
                }
            };
            if !taken {
                continue;
            }
            let mut out = r.ctx.clone();
            let mut publish_error = None;
            for (name, value) in &tr.publish {
                let scope = self.scope_for(&out, Some(self.view(r)), None);
                match expr::render(value, &scope) {
                    Ok(v) => {
                        out.insert(name.clone(), v);
                    }
                    Err(e) => {
                        publish_error = Some(e);
                        break;
                    }
                }
            }
            if let Some(e) = publish_error {
                self.log(error_entry(&e, Some(&task), Some(transition_id)), cmds);
                self.fail(cmds);
                continue;
            }
            let targets: Vec<&str> = if tr.next.is_empty() {
                vec!["continue"]
            } else {
                tr.next.iter().map(String::as_str).collect()
            };
            for target in targets {
                match target {
                    "continue" => engine.push(("continue", out.clone(), TaskStatus::Succeeded)),
                    "noop" => {
                        remediated = true;
                        engine.push(("noop", out.clone(), TaskStatus::Succeeded));
                    }
                    "fail" => {
                        remediated = true;
                        manual_fail = true;
                        engine.push(("fail", out.clone(), TaskStatus::Failed));
                    }
                    "retry" => {
                        remediated = true;
                        next_work.push((task.clone(), out.clone()));
                    }
                    other => {
                        remediated = true;
                        self.route_to(other, out.clone(), &task, &mut next_work);
                    }
                }
            }
        }
        for (name, ctx, status) in engine {
            let id = self.state.records.len();
            self.state.records.push(TaskRecord {
                instance: id,
                task: name.to_string(),
                route: 0,
                status,
                ctx,
                result: None,
                retry_count: 0,
                retry_delay: 0,
                retry_tally: 0,
                items: None,
                term: true,
                run_on_fail: false,
            });
            self.dirty.insert(id);
        }
        if manual_fail || (status == TaskStatus::Failed && !remediated) {
            self.fail(cmds);
        }
        for (task, ctx) in next_work {
            self.queue.push_back(Work::Stage {
                task,
                ctx,
                run_on_fail: manual_fail,
            });
        }
    }

    /// Routes a transition from `from` to `target`: a new instance, or an arrival at a join.
    pub(super) fn route_to(
        &mut self,
        target: &str,
        ctx: Map<String, Value>,
        from: &str,
        next: &mut Vec<(String, Map<String, Value>)>,
    ) {
        let Some(join) = self.spec.task(target).and_then(|t| t.join) else {
            next.push((target.to_string(), ctx));
            return;
        };
        let required = match join {
            Join::All => self.spec.inbound.get(target).map_or(1, BTreeSet::len),
            Join::Count(n) => n.max(1),
        };
        let barrier = self
            .state
            .header
            .barriers
            .entry(target.to_string())
            .or_insert_with(|| Barrier {
                arrived: BTreeSet::new(),
                ctx: Map::new(),
                fired: false,
            });
        if barrier.fired {
            if !barrier.arrived.contains(from) {
                barrier.arrived.insert(from.to_string());
                return;
            }
            // A new round (the join is inside a cycle).
            *barrier = Barrier {
                arrived: BTreeSet::new(),
                ctx: Map::new(),
                fired: false,
            };
        }
        barrier.arrived.insert(from.to_string());
        for (k, v) in ctx {
            barrier.ctx.insert(k, v);
        }
        if barrier.arrived.len() >= required {
            barrier.fired = true;
            next.push((target.to_string(), barrier.ctx.clone()));
        }
    }
}
