//! How the machine processes its work: staging and running task instances, with-items,
//! completions (retry, transitions, publish, joins, engine commands) and the end of the
//! workflow. See the transition table in [`super`].

use serde_json::{json, Map, Value};

use super::{
    as_u64, error_entry, ActionStatus, Command, ItemChange, ItemsState, TaskRecord, TaskStatus,
    Work, Workflow, WorkflowStatus,
};
use crate::workflow::expr::{self, ExprError, Scope, TaskView};

impl Workflow {
    pub(super) fn scope_for<'a>(
        &'a self,
        vars: &'a Map<String, Value>,
        task: Option<TaskView<'a>>,
        item: Option<&'a Value>,
    ) -> Scope<'a> {
        Scope {
            vars,
            task,
            item,
            statuses: &self.state.statuses,
            kv: self.kv.as_ref(),
        }
    }

    pub(super) fn log(&mut self, entry: Value, cmds: &mut Vec<Command>) {
        self.state.header.errors.push(entry.clone());
        cmds.push(Command::Error(entry));
    }

    pub(super) fn set_status(&mut self, status: WorkflowStatus, cmds: &mut Vec<Command>) {
        if self.state.header.status != status {
            self.state.header.status = status;
            if !matches!(
                status,
                WorkflowStatus::Succeeded | WorkflowStatus::Canceled | WorkflowStatus::Failed
            ) {
                cmds.push(Command::Status(status));
            }
        }
    }

    /// Fails the workflow (immediately; active tasks finish first before `Finished`).
    pub(super) fn fail(&mut self, cmds: &mut Vec<Command>) {
        if !matches!(
            self.state.header.status,
            WorkflowStatus::Canceling | WorkflowStatus::Canceled
        ) {
            self.set_status(WorkflowStatus::Failed, cmds);
        }
    }

    pub(super) fn set_record_status(&mut self, id: usize, status: TaskStatus) {
        let r = &mut self.state.records[id];
        let was_active = r.status.is_active();
        r.status = status;
        match (was_active, status.is_active()) {
            (false, true) => self.state.active += 1,
            (true, false) => self.state.active -= 1,
            _ => {}
        }
        self.state
            .statuses
            .insert(r.task.clone(), status.as_str().to_string());
        self.dirty.insert(id);
    }

    pub(super) fn drain(&mut self, cmds: &mut Vec<Command>) {
        while let Some(work) = self.queue.pop_front() {
            match work {
                Work::Stage {
                    task,
                    ctx,
                    run_on_fail,
                } => self.stage(task, ctx, run_on_fail, cmds),
                Work::Run(id) => self.run(id, cmds),
                Work::Complete(id, status, result) => self.complete(id, status, result, cmds),
            }
        }
        self.settle(cmds);
    }

    /// May new work start now? Holds it when paused.
    pub(super) fn may_start(&mut self, work: &Work, run_on_fail: bool) -> bool {
        match self.state.header.status {
            WorkflowStatus::Running => true,
            WorkflowStatus::Pausing | WorkflowStatus::Paused => {
                self.state.header.held.push(work.clone());
                false
            }
            WorkflowStatus::Failed => run_on_fail,
            _ => false,
        }
    }

    pub(super) fn stage(
        &mut self,
        task: String,
        ctx: Map<String, Value>,
        run_on_fail: bool,
        cmds: &mut Vec<Command>,
    ) {
        let work = Work::Stage {
            task: task.clone(),
            ctx,
            run_on_fail,
        };
        if !self.may_start(&work, run_on_fail) {
            return;
        }
        let Work::Stage { ctx, .. } = work else {
            unreachable!("built above")
        };
        let spec = self.spec.clone();
        let Some(task_spec) = spec.task(&task) else {
            return;
        };
        let id = self.state.records.len();
        self.state.records.push(TaskRecord {
            instance: id,
            task: task.clone(),
            route: 0,
            status: TaskStatus::Succeeded,
            ctx,
            result: None,
            retry_count: 0,
            retry_delay: 0,
            retry_tally: 0,
            items: None,
            term: task_spec.next.is_empty(),
            run_on_fail,
        });
        self.set_record_status(id, TaskStatus::Delayed);
        // Retry count and delay, and the task delay, are evaluated in the task's context.
        let evaluated = (|| -> Result<(u64, u64, u64), ExprError> {
            let r = &self.state.records[id];
            let scope = self.scope_for(&r.ctx, None, None);
            let number = |v: &Option<Value>, field: &str| -> Result<u64, ExprError> {
                match v {
                    None => Ok(0),
                    Some(v) => {
                        let n = expr::render(v, &scope)?;
                        as_u64(&n).ok_or_else(|| ExprError {
                            kind: "ValueError",
                            message: format!("The {field} for task \"{task}\" is not an integer."),
                        })
                    }
                }
            };
            let (count, retry_delay) = match &task_spec.retry {
                Some(r) => (
                    number(&Some(r.count.clone()), "retry count")?,
                    number(&r.delay, "retry delay")?,
                ),
                None => (0, 0),
            };
            Ok((count, retry_delay, number(&task_spec.delay, "delay")?))
        })();
        match evaluated {
            Ok((count, retry_delay, delay)) => {
                let r = &mut self.state.records[id];
                r.retry_count = count;
                r.retry_delay = retry_delay;
                if delay > 0 {
                    cmds.push(Command::ScheduleTimer {
                        task,
                        instance: id,
                        delay,
                    });
                } else {
                    self.queue.push_back(Work::Run(id));
                }
            }
            Err(e) => self.task_error(id, &e, cmds),
        }
    }

    /// An expression error in a task: logged, the task and the workflow fail.
    pub(super) fn task_error(&mut self, id: usize, e: &ExprError, cmds: &mut Vec<Command>) {
        let task = self.state.records[id].task.clone();
        self.log(error_entry(e, Some(&task), None), cmds);
        self.set_record_status(id, TaskStatus::Failed);
        self.state.records[id].result = Some(Value::Null);
        self.fail(cmds);
    }

    pub(super) fn run(&mut self, id: usize, cmds: &mut Vec<Command>) {
        let run_on_fail = self.state.records[id].run_on_fail;
        if !self.may_start(&Work::Run(id), run_on_fail) {
            if matches!(
                self.state.header.status,
                WorkflowStatus::Pausing | WorkflowStatus::Paused
            ) {
                self.set_record_status(id, TaskStatus::Paused);
            }
            return;
        }
        let spec = self.spec.clone();
        let task = self.state.records[id].task.clone();
        let Some(task_spec) = spec.task(&task) else {
            return;
        };
        self.set_record_status(id, TaskStatus::Running);
        if let Some(with) = &task_spec.with {
            let r = &self.state.records[id];
            let scope = self.scope_for(&r.ctx, None, None);
            let items = expr::evaluate(&with.items, &scope).and_then(|items| {
                let concurrency = match &with.concurrency {
                    None => None,
                    Some(c) => Some(as_u64(&expr::render(c, &scope)?).ok_or_else(|| ExprError {
                        kind: "ValueError",
                        message: format!("The concurrency of task \"{task}\" is not an integer."),
                    })? as usize),
                };
                match items {
                    Value::Array(list) => Ok((list, concurrency)),
                    other => Err(ExprError {
                        kind: "TypeError",
                        message: format!(
                            "The value of \"{}\" is not type of list: {other}",
                            with.items
                        ),
                    }),
                }
            });
            match items {
                Ok((list, concurrency)) => {
                    let values: Vec<Value> = list
                        .into_iter()
                        .map(|v| match with.vars.as_slice() {
                            [] => v,
                            [one] => json!({ one.as_str(): v }),
                            names => {
                                let parts = v.as_array().cloned().unwrap_or_else(|| vec![v]);
                                Value::Object(
                                    names
                                        .iter()
                                        .cloned()
                                        .zip(
                                            parts.into_iter().chain(std::iter::repeat(Value::Null)),
                                        )
                                        .collect(),
                                )
                            }
                        })
                        .collect();
                    let n = values.len();
                    self.item_changes.push(ItemChange::Values {
                        instance: id,
                        retry: self.state.records[id].retry_tally,
                        values: values.clone(),
                    });
                    self.state.records[id].items = Some(ItemsState {
                        values,
                        results: vec![Value::Null; n],
                        concurrency: concurrency.filter(|c| *c > 0),
                        next: 0,
                        active: 0,
                        completed: 0,
                        failed: false,
                        canceled: false,
                        done: vec![false; n],
                    });
                    if n == 0 {
                        self.queue
                            .push_back(Work::Complete(id, TaskStatus::Succeeded, json!([])));
                    } else {
                        self.start_items(id, cmds);
                    }
                }
                Err(e) => self.task_error(id, &e, cmds),
            }
            return;
        }
        let Some(action) = task_spec.action.clone() else {
            self.queue
                .push_back(Work::Complete(id, TaskStatus::Succeeded, Value::Null));
            return;
        };
        match self.render_input(id, None) {
            Ok(input) => cmds.push(Command::RunAction {
                task,
                instance: id,
                item: None,
                action,
                input,
            }),
            Err(e) => self.task_error(id, &e, cmds),
        }
    }

    /// The [`Command::RunAction`]s of every action the state says is running: running records
    /// without items, and the started, not completed items of with-items records. A service
    /// recovering after a crash compares them with the executions that exist and starts the
    /// missing ones. Inputs are rendered again (an input that no longer renders is skipped).
    pub fn running_actions(&self) -> Vec<Command> {
        let mut out = Vec::new();
        for r in &self.state.records {
            if r.status != TaskStatus::Running {
                continue;
            }
            let Some(action) = self.spec.task(&r.task).and_then(|t| t.action.clone()) else {
                continue;
            };
            let items: Vec<Option<usize>> = match &r.items {
                None => vec![None],
                Some(s) => (0..s.next.min(s.values.len()))
                    .filter(|i| !s.done.get(*i).copied().unwrap_or(false))
                    .map(Some)
                    .collect(),
            };
            for item in items {
                if let Ok(input) = self.render_input(r.instance, item) {
                    out.push(Command::RunAction {
                        task: r.task.clone(),
                        instance: r.instance,
                        item,
                        action: action.clone(),
                        input,
                    });
                }
            }
        }
        out
    }

    pub(super) fn render_input(&self, id: usize, item: Option<usize>) -> Result<Value, ExprError> {
        let r = &self.state.records[id];
        let Some(input) = self.spec.task(&r.task).and_then(|t| t.input.as_ref()) else {
            return Ok(json!({}));
        };
        let item = item.and_then(|i| r.items.as_ref().map(|s| &s.values[i]));
        let view = TaskView {
            id: &r.task,
            route: r.route,
            status: None,
            result: None,
        };
        expr::render(input, &self.scope_for(&r.ctx, Some(view), item))
    }

    /// Starts items of record `id` up to its concurrency.
    pub(super) fn start_items(&mut self, id: usize, cmds: &mut Vec<Command>) {
        let spec = self.spec.clone();
        loop {
            let r = &self.state.records[id];
            let Some(items) = &r.items else { return };
            let full = items.concurrency.is_some_and(|c| items.active >= c);
            if items.failed || items.canceled || full || items.next >= items.values.len() {
                return;
            }
            if self.state.header.status != WorkflowStatus::Running {
                if matches!(
                    self.state.header.status,
                    WorkflowStatus::Pausing | WorkflowStatus::Paused
                ) {
                    self.state.header.items_waiting.insert(id);
                }
                return;
            }
            let i = items.next;
            let task = r.task.clone();
            match self.render_input(id, Some(i)) {
                Ok(input) => {
                    let action = spec.task(&task).and_then(|t| t.action.clone());
                    let items = self.state.records[id]
                        .items
                        .as_mut()
                        .expect("checked above");
                    items.next += 1;
                    items.active += 1;
                    self.items_dirty.insert(id);
                    match action {
                        Some(action) => cmds.push(Command::RunAction {
                            task,
                            instance: id,
                            item: Some(i),
                            action,
                            input,
                        }),
                        None => self.queue.push_back(Work::Complete(
                            id,
                            TaskStatus::Succeeded,
                            Value::Null,
                        )),
                    }
                }
                Err(e) => {
                    self.task_error(id, &e, cmds);
                    return;
                }
            }
        }
    }

    pub(super) fn action_completed(
        &mut self,
        id: usize,
        item: Option<usize>,
        status: ActionStatus,
        result: Value,
        cmds: &mut Vec<Command>,
    ) {
        let suspended = self.state.records.get(id).is_some_and(|r| {
            matches!(r.status, TaskStatus::Pending | TaskStatus::Paused)
                && r.items.is_none()
                && item.is_none()
        });
        if suspended && !self.held_records_contain(id) {
            // The response to an inquiry (or a paused nested workflow that went on): the
            // workflow resumes, as StackStorm resumes it when an inquiry is answered.
            self.resume(cmds);
            if self.state.records[id].status != TaskStatus::Running {
                self.set_record_status(id, TaskStatus::Running);
            }
        }
        let wf_status = self.state.header.status;
        let Some(r) = self.state.records.get_mut(id) else {
            return;
        };
        let stopping = match wf_status {
            WorkflowStatus::Canceling | WorkflowStatus::Canceled => true,
            WorkflowStatus::Failed => !r.run_on_fail,
            _ => false,
        };
        if r.status != TaskStatus::Running {
            return;
        }
        let task_status = match status {
            ActionStatus::Succeeded => TaskStatus::Succeeded,
            ActionStatus::Failed | ActionStatus::Timeout => TaskStatus::Failed,
            ActionStatus::Canceled => TaskStatus::Canceled,
        };
        match (&mut r.items, item) {
            (Some(items), Some(i)) if i < items.values.len() => {
                if items.done.get(i).copied().unwrap_or(false) {
                    return; // reported twice (a redelivery): already counted
                }
                if let Some(d) = items.done.get_mut(i) {
                    *d = true;
                }
                self.item_changes.push(ItemChange::Done {
                    instance: id,
                    retry: r.retry_tally,
                    item: i,
                    result: result.clone(),
                });
                items.results[i] = result;
                items.active = items.active.saturating_sub(1);
                items.completed += 1;
                items.failed |= task_status == TaskStatus::Failed;
                items.canceled |= task_status == TaskStatus::Canceled;
                self.items_dirty.insert(id);
                let all_done = items.completed == items.values.len();
                // No item starts once one failed or was canceled, or the workflow is ending.
                let stopped = (items.failed || items.canceled || stopping) && items.active == 0;
                if all_done || stopped {
                    let status = if items.failed {
                        TaskStatus::Failed
                    } else if items.canceled || !all_done {
                        TaskStatus::Canceled
                    } else {
                        TaskStatus::Succeeded
                    };
                    let results = Value::Array(items.results.clone());
                    self.queue.push_back(Work::Complete(id, status, results));
                } else {
                    self.start_items(id, cmds);
                    let idle = self.state.records[id]
                        .items
                        .as_ref()
                        .is_some_and(|s| s.active == 0);
                    if idle && self.state.header.items_waiting.contains(&id) {
                        self.set_record_status(id, TaskStatus::Paused);
                    }
                }
            }
            (None, None) => self
                .queue
                .push_back(Work::Complete(id, task_status, result)),
            _ => {}
        }
    }

    /// After the queue drained: status changes when nothing is active, and the end.
    pub(super) fn settle(&mut self, cmds: &mut Vec<Command>) {
        if self.state.header.finished || self.state.active > 0 {
            return;
        }
        match self.state.header.status {
            WorkflowStatus::Running if self.has_suspended() => {
                self.set_status(WorkflowStatus::Paused, cmds);
            }
            WorkflowStatus::Running => {
                let unreachable: Vec<String> = self
                    .state
                    .header
                    .barriers
                    .iter()
                    .filter(|(_, b)| !b.fired && !b.arrived.is_empty())
                    .map(|(name, _)| name.clone())
                    .collect();
                for name in unreachable {
                    let e = ExprError {
                        kind: "UnreachableJoinError",
                        message: format!(
                            "The join task \"{name}\" is unreachable: its inbound criteria cannot be satisfied."
                        ),
                    };
                    self.log(error_entry(&e, Some(&name), None), cmds);
                    self.state.header.status = WorkflowStatus::Failed;
                }
                if self.state.header.status == WorkflowStatus::Running {
                    self.state.header.status = WorkflowStatus::Succeeded;
                }
                self.finish(cmds);
            }
            WorkflowStatus::Pausing => self.set_status(WorkflowStatus::Paused, cmds),
            WorkflowStatus::Canceling => {
                self.state.header.status = WorkflowStatus::Canceled;
                self.finish(cmds);
            }
            WorkflowStatus::Failed => self.finish(cmds),
            _ => {}
        }
    }

    /// Renders the output against the terminal context and emits [`Command::Finished`].
    pub(super) fn finish(&mut self, cmds: &mut Vec<Command>) {
        if let Some(last) = self
            .state
            .records
            .iter_mut()
            .rev()
            .find(|r| !r.status.is_active())
        {
            last.term = true;
            self.dirty.insert(last.instance);
        }
        let mut ctx = Map::new();
        let mut terminal = self.state.records.iter().filter(|r| r.term).peekable();
        if terminal.peek().is_none() {
            ctx = self.state.header.ctx.clone();
        }
        for r in terminal {
            for (k, v) in &r.ctx {
                ctx.insert(k.clone(), v.clone());
            }
        }
        let spec = self.spec.clone();
        let mut output = Map::new();
        let mut errors = Vec::new();
        for (name, value) in &spec.output {
            match expr::render(value, &self.scope_for(&ctx, None, None)) {
                Ok(v) => {
                    output.insert(name.clone(), v);
                }
                Err(e) => errors.push(error_entry(&e, None, None)),
            }
        }
        let had_errors = !errors.is_empty();
        for e in errors {
            self.log(e, cmds);
        }
        if had_errors && self.state.header.status == WorkflowStatus::Succeeded {
            self.state.header.status = WorkflowStatus::Failed;
        }
        let output = (!output.is_empty()).then_some(Value::Object(output));
        let mut result = json!({ "output": output });
        if self.state.header.status == WorkflowStatus::Failed {
            result["errors"] = Value::Array(self.state.header.errors.clone());
        }
        self.state.header.output = output;
        self.state.header.finished = true;
        cmds.push(Command::Finished {
            status: self.state.header.status,
            result,
        });
    }
}
