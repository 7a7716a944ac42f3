//! The enabled rules, compiled and indexed by the trigger they listen on, matched against
//! trigger instances the way StackStorm's `RulesMatcher` does.
//!
//! A rule listens on `rule.trigger.ref` (the Trigger object's ref, set at registration), or on
//! its trigger type ref when that is not set; an instance is only evaluated against the rules
//! of its own trigger, so the cost of an event grows with those rules, not with all rules.
//! Standard rules are evaluated first (every non-`backstop` type); `backstop` rules only when
//! no standard rule matched. Rules keep the order they were added in (StackStorm: the store's
//! natural order). Patterns, paths and regexes are compiled when a rule is added, never per
//! event. Pure: no store, no bus; the service owns the set and swaps it on rule changes.

use std::cell::OnceCell;
use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value as Json;

use super::filter::{CompiledCriteria, CriteriaError, MatchContext, Scope, TRIGGER_PREFIX};
use crate::model::Rule;
use crate::template::TemplateEngine;

/// The rule type whose rules only fire when no other rule matched.
pub const RULE_TYPE_BACKSTOP: &str = "backstop";

/// The trigger a rule is matched for: its Trigger ref, else its trigger type ref.
pub fn trigger_key(rule: &Rule) -> &str {
    match rule.trigger.trigger_ref.as_deref() {
        Some(r) if !r.is_empty() => r,
        _ => &rule.trigger.trigger_type,
    }
}

/// A rule with its criteria compiled.
#[derive(Debug)]
struct CompiledRule {
    rule: Rule,
    /// Position in the set: rules of a trigger are evaluated in this order.
    seq: u64,
    backstop: bool,
    criteria: CompiledCriteria,
}

/// The outcome of matching one trigger instance.
#[derive(Debug, Clone, Default)]
pub struct MatchResult<'a> {
    /// Standard rules that matched, in order.
    pub matched_standard: Vec<&'a Rule>,
    /// Backstop rules that matched (always empty when a standard rule matched: they are then
    /// not evaluated).
    pub matched_backstop: Vec<&'a Rule>,
    /// `(rule ref, failure reason)` for each criterion that failed to evaluate; the service
    /// records a failed rule enforcement for each. With
    /// [`MatchContext::trigger_instance_id`] set, the reason is worded exactly as
    /// StackStorm's (`Failed to match rule "<ref>" against trigger instance "<id>": ...`).
    pub errors: Vec<(String, String)>,
    /// The same failures, typed, with the rule they belong to.
    pub failures: Vec<(&'a Rule, CriteriaError)>,
}

impl<'a> MatchResult<'a> {
    /// The rules to enforce: the standard matches, or else the backstop matches.
    pub fn matched(&self) -> &[&'a Rule] {
        if self.matched_standard.is_empty() {
            &self.matched_backstop
        } else {
            &self.matched_standard
        }
    }
}

/// Enabled rules, compiled once and indexed by trigger; cheap to clone (rules are shared), so a
/// service can copy, modify and swap it.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    engine: TemplateEngine,
    /// Trigger → its rules, in `seq` order.
    by_trigger: HashMap<String, Vec<Arc<CompiledRule>>>,
    /// Rule ref → the trigger it is filed under.
    by_ref: HashMap<String, String>,
    next_seq: u64,
}

impl RuleSet {
    /// An empty set whose patterns will be compiled with `engine`.
    pub fn new(engine: &TemplateEngine) -> RuleSet {
        RuleSet {
            engine: engine.clone(),
            ..RuleSet::default()
        }
    }

    /// A set of the enabled `rules` (disabled ones are skipped), with the problems found while
    /// compiling them as `(rule ref, error)`. Such rules are kept: the problem is reported
    /// again, as a failed criterion, whenever the rule is evaluated (as StackStorm does).
    pub fn build(
        rules: Vec<Rule>,
        engine: &TemplateEngine,
    ) -> (RuleSet, Vec<(String, CriteriaError)>) {
        let mut set = RuleSet::new(engine);
        let mut issues = Vec::new();
        for rule in rules {
            let rule_ref = rule.rule_ref.clone();
            issues.extend(set.upsert(rule).into_iter().map(|e| (rule_ref.clone(), e)));
        }
        (set, issues)
    }

    /// Adds `rule`, or replaces the rule with the same ref (keeping its place); a disabled
    /// rule is removed instead. Returns the problems found while compiling it.
    pub fn upsert(&mut self, rule: Rule) -> Vec<CriteriaError> {
        let previous_seq = self.take(&rule.rule_ref).map(|r| r.seq);
        if !rule.enabled {
            return Vec::new();
        }
        let (criteria, issues) =
            CompiledCriteria::compile(&rule.rule_ref, &rule.criteria, &self.engine);
        let seq = previous_seq.unwrap_or_else(|| {
            self.next_seq += 1;
            self.next_seq
        });
        let key = trigger_key(&rule).to_string();
        let compiled = Arc::new(CompiledRule {
            backstop: rule.rule_type.type_ref == RULE_TYPE_BACKSTOP,
            seq,
            criteria,
            rule,
        });
        self.by_ref
            .insert(compiled.rule.rule_ref.clone(), key.clone());
        let bucket = self.by_trigger.entry(key).or_default();
        let at = bucket.partition_point(|r| r.seq < seq);
        bucket.insert(at, compiled);
        issues
    }

    /// Removes the rule `rule_ref`; returns it if it was there.
    pub fn remove(&mut self, rule_ref: &str) -> Option<Rule> {
        self.take(rule_ref).map(|r| match Arc::try_unwrap(r) {
            Ok(compiled) => compiled.rule,
            Err(shared) => shared.rule.clone(),
        })
    }

    fn take(&mut self, rule_ref: &str) -> Option<Arc<CompiledRule>> {
        let key = self.by_ref.remove(rule_ref)?;
        let bucket = self.by_trigger.get_mut(&key)?;
        let pos = bucket.iter().position(|r| r.rule.rule_ref == rule_ref)?;
        let removed = bucket.remove(pos);
        if bucket.is_empty() {
            self.by_trigger.remove(&key);
        }
        Some(removed)
    }

    /// The rule `rule_ref`, if it is in the set.
    pub fn rule(&self, rule_ref: &str) -> Option<&Rule> {
        let key = self.by_ref.get(rule_ref)?;
        self.by_trigger
            .get(key)?
            .iter()
            .find(|r| r.rule.rule_ref == rule_ref)
            .map(|r| &r.rule)
    }

    /// The rules listening on `trigger_ref`, in evaluation order.
    pub fn rules_for<'a>(&'a self, trigger_ref: &str) -> impl Iterator<Item = &'a Rule> + 'a {
        self.by_trigger
            .get(trigger_ref)
            .into_iter()
            .flatten()
            .map(|r| &r.rule)
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.by_ref.len()
    }

    /// Whether the set has no rules.
    pub fn is_empty(&self) -> bool {
        self.by_ref.is_empty()
    }

    /// Matches an instance of trigger `trigger_ref` with `payload` against the rules of that
    /// trigger. `ctx` is a [`MatchContext`] or just the template context (`&RenderContext`,
    /// with the datastore).
    pub fn match_instance<'a>(
        &'a self,
        trigger_ref: &str,
        payload: &Json,
        ctx: impl Into<MatchContext>,
    ) -> MatchResult<'a> {
        self.match_with(trigger_ref, payload, &ctx.into())
    }

    /// [`match_instance`](Self::match_instance) with a borrowed context.
    pub fn match_with<'a>(
        &'a self,
        trigger_ref: &str,
        payload: &Json,
        ctx: &MatchContext,
    ) -> MatchResult<'a> {
        let mut result = MatchResult::default();
        let Some(bucket) = self.by_trigger.get(trigger_ref) else {
            return result;
        };
        // One template context and one clock reading for every rule of this instance.
        let now = OnceCell::new();
        let scope = Scope::new(TRIGGER_PREFIX, payload, ctx, &now);
        let mut errors = Vec::new();
        let mut evaluate = |rule: &'a CompiledRule, result: &mut MatchResult<'a>| {
            let matched = rule
                .criteria
                .evaluate_in(&rule.rule.rule_ref, &scope, &mut errors);
            for error in errors.drain(..) {
                let reason = match &ctx.trigger_instance_id {
                    Some(id) => error.failure_reason(&rule.rule.rule_ref, id),
                    None => error.to_string(),
                };
                result.errors.push((rule.rule.rule_ref.clone(), reason));
                result.failures.push((&rule.rule, error));
            }
            matched
        };
        for rule in bucket.iter().filter(|r| !r.backstop) {
            if evaluate(rule, &mut result) {
                result.matched_standard.push(&rule.rule);
            }
        }
        if result.matched_standard.is_empty() {
            for rule in bucket.iter().filter(|r| r.backstop) {
                if evaluate(rule, &mut result) {
                    result.matched_backstop.push(&rule.rule);
                }
            }
        }
        result
    }
}
