//! A continuous query's physical plan cut at its aggregation: the partial
//! aggregation of raw rows into states (run over each load's new files),
//! the reduction of states into fewer states, and the final aggregation of
//! states into the answer (with whatever the plan does above it).

use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode, PhysicalGroupBy};
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::udaf::AggregateFunctionExpr;

/// The plan of a continuous query, cut at its aggregation.
pub struct Split {
    plan: Arc<dyn ExecutionPlan>,
    /// The aggregation node the plan is cut at.
    top: Arc<dyn ExecutionPlan>,
    group_by: PhysicalGroupBy,
    aggregates: Vec<Arc<AggregateFunctionExpr>>,
    input_schema: SchemaRef,
    /// The aggregation of raw rows into states.
    pub partial: Arc<dyn ExecutionPlan>,
}

impl Split {
    /// Cuts `plan` at its aggregation; why it cannot be, when it cannot:
    /// no aggregation, or one over rows that a load's new rows alone do
    /// not give (another aggregation, a join, a window, a limit below it).
    pub fn of(plan: Arc<dyn ExecutionPlan>) -> Result<Split, String> {
        let top = topmost_aggregate(&plan)
            .ok_or("a continuous query must aggregate (GROUP BY keys and aggregate functions)")?;
        let agg = top.downcast_ref::<AggregateExec>().ok_or("not an aggregation")?;
        let (group_by, aggregates, filters, raw) = match agg.mode() {
            AggregateMode::Single | AggregateMode::SinglePartitioned => {
                (agg.group_expr().clone(), agg.aggr_expr().to_vec(), agg.filter_expr().to_vec(), agg.input().clone())
            }
            _ => {
                let partial = topmost_aggregate(agg.input()).ok_or("an aggregation without its partial step")?;
                let partial = partial.downcast_ref::<AggregateExec>().ok_or("not an aggregation")?;
                (
                    partial.group_expr().clone(),
                    partial.aggr_expr().to_vec(),
                    partial.filter_expr().to_vec(),
                    partial.input().clone(),
                )
            }
        };
        if group_by.has_grouping_set() {
            return Err("GROUPING SETS, CUBE and ROLLUP cannot be kept current".to_owned());
        }
        if let Some(node) = unmergeable(&raw) {
            return Err(format!(
                "the rows it aggregates come from {node}, which a load's new rows alone do not give: \
                 aggregate the collections' rows directly (count(DISTINCT x) is approx_distinct(x) here)"
            ));
        }
        let input_schema = agg.input_schema();
        let partial = Arc::new(
            AggregateExec::try_new(
                AggregateMode::Partial,
                group_by.clone(),
                aggregates.clone(),
                filters,
                raw,
                input_schema.clone(),
            )
            .map_err(|e| e.to_string())?,
        );
        Ok(Split { plan, top, group_by, aggregates, input_schema, partial })
    }

    /// The states' columns: the group keys, then each aggregate's state.
    pub fn state_schema(&self) -> SchemaRef {
        self.partial.schema()
    }

    /// Merges `states` into one state per group.
    pub fn reduce(&self, states: Arc<dyn ExecutionPlan>) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let keys: Vec<usize> = (0..self.group_count()).collect();
        self.merge(AggregateMode::PartialReduce, states, &keys, None)
    }

    /// The query's answer from `states` (`none`: there are none yet).
    pub fn finish(
        &self,
        states: Arc<dyn ExecutionPlan>,
        none: bool,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let last = if none && self.group_count() == 0 {
            // SQL's one row of an aggregate over nothing (count 0).
            Arc::new(AggregateExec::try_new(
                AggregateMode::Final,
                PhysicalGroupBy::default(),
                self.aggregates.clone(),
                vec![None; self.aggregates.len()],
                states,
                self.input_schema.clone(),
            )?)
        } else {
            let keys: Vec<usize> = (0..self.group_count()).collect();
            self.merge(AggregateMode::Final, states, &keys, None)?
        };
        replace(&self.plan, &self.top, &last)
    }

    /// The final values of the aggregates per the group keys at `keep`
    /// (positions among the state's group keys), over the states whose
    /// group key at `range.0` lies in `[range.1, range.2)`: the group keys
    /// kept, then one column per aggregate.
    pub fn regroup(
        &self,
        states: Arc<dyn ExecutionPlan>,
        keep: &[usize],
        range: Option<(usize, i64, i64)>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        self.merge(AggregateMode::Final, states, keep, range)
    }

    /// Aggregates states (`mode` Final or PartialReduce) per the group keys
    /// at `keep`, over the states in `range`: the keys kept, then the
    /// aggregates' values or states.
    fn merge(
        &self,
        mode: AggregateMode,
        states: Arc<dyn ExecutionPlan>,
        keep: &[usize],
        range: Option<(usize, i64, i64)>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        use datafusion::logical_expr::Operator;
        use datafusion::physical_expr::expressions::{BinaryExpr, Column, lit};
        use datafusion::physical_plan::PhysicalExpr;
        use datafusion::physical_plan::filter::FilterExec;
        use datafusion::physical_plan::projection::ProjectionExec;

        let column = |schema: &SchemaRef, i: usize| -> (Arc<dyn PhysicalExpr>, String) {
            (Arc::new(Column::new(schema.field(i).name(), i)), schema.field(i).name().clone())
        };
        let schema = states.schema();
        let mut input: Arc<dyn ExecutionPlan> = if states.properties().output_partitioning().partition_count() > 1 {
            Arc::new(CoalescePartitionsExec::new(states))
        } else {
            states
        };
        if let Some((key, low, high)) = range {
            let key: Arc<dyn PhysicalExpr> = column(&schema, key).0;
            let from = Arc::new(BinaryExpr::new(key.clone(), Operator::GtEq, lit(low)));
            let to = Arc::new(BinaryExpr::new(key, Operator::Lt, lit(high)));
            input = Arc::new(FilterExec::try_new(Arc::new(BinaryExpr::new(from, Operator::And, to)), input)?);
        }
        // With no key, a constant one: DataFusion's grouped aggregation
        // merges every state read back, its ungrouped one not all.
        let mut columns: Vec<(Arc<dyn PhysicalExpr>, String)> = Vec::new();
        if keep.is_empty() {
            columns.push((lit(0i64), "$all".to_owned()));
        }
        columns
            .extend(keep.iter().copied().chain(self.group_count()..schema.fields().len()).map(|i| column(&schema, i)));
        let key_count = keep.len().max(1);
        let input = Arc::new(ProjectionExec::try_new(columns.clone(), input)?);
        let projected = input.schema();
        let group_by = PhysicalGroupBy::new_single((0..key_count).map(|i| column(&projected, i)).collect());
        let merged: Arc<dyn ExecutionPlan> = Arc::new(AggregateExec::try_new(
            mode,
            group_by,
            self.aggregates.clone(),
            vec![None; self.aggregates.len()],
            input,
            self.input_schema.clone(),
        )?);
        if !keep.is_empty() {
            return Ok(merged);
        }
        let output = merged.schema();
        let values: Vec<_> = (1..output.fields().len()).map(|i| column(&output, i)).collect();
        Ok(Arc::new(ProjectionExec::try_new(values, merged)?))
    }

    /// How many of the state's first columns are group keys.
    pub fn group_count(&self) -> usize {
        self.group_by.expr().len()
    }
}

fn topmost_aggregate(plan: &Arc<dyn ExecutionPlan>) -> Option<Arc<dyn ExecutionPlan>> {
    if plan.is::<AggregateExec>() {
        return Some(plan.clone());
    }
    plan.children().into_iter().find_map(topmost_aggregate)
}

/// The first node below an aggregation that makes its rows depend on more
/// than the rows of one load.
fn unmergeable(plan: &Arc<dyn ExecutionPlan>) -> Option<String> {
    let name = plan.name();
    let refused = ["Aggregate", "Join", "Window", "Limit", "Distinct"];
    if refused.iter().any(|r| name.contains(r)) || plan.fetch().is_some() {
        return Some(name.to_owned());
    }
    plan.children().into_iter().find_map(unmergeable)
}

/// `plan` with `old` (a node of it) replaced by `new`.
fn replace(
    plan: &Arc<dyn ExecutionPlan>,
    old: &Arc<dyn ExecutionPlan>,
    new: &Arc<dyn ExecutionPlan>,
) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
    if Arc::ptr_eq(plan, old) {
        return Ok(new.clone());
    }
    let children: Vec<Arc<dyn ExecutionPlan>> =
        plan.children().into_iter().map(|c| replace(c, old, new)).collect::<datafusion::error::Result<_>>()?;
    if children.is_empty() {
        return Ok(plan.clone());
    }
    datafusion::physical_plan::execution_plan::replace_children_if_necessary(plan.clone(), children)
}

/// For each of `keys` (output columns of the query), the group key it is,
/// by position; why not, when one is not a group key.
pub fn key_columns(logical: &LogicalPlan, keys: &[String]) -> Result<Vec<usize>, String> {
    let mut outputs: Vec<(String, Option<String>)> = Vec::new();
    let mut plan = logical;
    loop {
        match plan {
            LogicalPlan::Projection(p) if outputs.is_empty() => {
                outputs = p
                    .expr
                    .iter()
                    .map(|e| {
                        let (name, inner) = match e {
                            Expr::Alias(a) => (a.name.clone(), a.expr.as_ref()),
                            Expr::Column(c) => (c.name.clone(), e),
                            other => (other.schema_name().to_string(), other),
                        };
                        let column = match inner {
                            Expr::Column(c) => Some(c.name.clone()),
                            _ => None,
                        };
                        (name, column)
                    })
                    .collect();
                plan = p.input.as_ref();
            }
            LogicalPlan::Aggregate(a) => {
                let groups = a.group_expr.len();
                let fields = a.schema.fields();
                return keys
                    .iter()
                    .map(|key| {
                        let column = match outputs.iter().find(|(name, _)| name == key) {
                            Some((_, Some(column))) => column.clone(),
                            Some((_, None)) => return Err(format!("partition key {key} is not a GROUP BY key")),
                            None if outputs.is_empty() => key.clone(),
                            None => return Err(format!("partition key {key} is not a column of the query")),
                        };
                        fields[..groups]
                            .iter()
                            .position(|f| f.name() == &column)
                            .ok_or_else(|| format!("partition key {key} is not a GROUP BY key"))
                    })
                    .collect();
            }
            other => match other.inputs().as_slice() {
                [one] => plan = one,
                _ => return Err("the query's aggregation could not be found".to_owned()),
            },
        }
    }
}
