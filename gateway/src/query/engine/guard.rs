//! Every scalar function of the engine, wrapped with two checks the engine
//! does not make itself:
//!
//! - The query's deadline. Planning does not yield, so a query past its
//!   time could not be stopped while it plans; every planning step that
//!   involves a function (typing, coercion, simplification, constant
//!   folding) asks the function, and the wrapper then fails it.
//! - The size of what a function makes. A few functions turn a short
//!   argument into a value of any size (`repeat('a', 300000000)`); their
//!   output is estimated from the arguments before it is made, and any
//!   function's output is measured after, against the query's memory
//!   limit, which the engine's memory pool does not see.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::{DataType, FieldRef, Int64Type};
use datafusion::common::tree_node::{TreeNode as _, TreeNodeRecursion};
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::execution::FunctionRegistry as _;
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::interval_arithmetic::Interval;
use datafusion::logical_expr::preimage::PreimageResult;
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::sort_properties::{ExprProperties, SortProperties};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, Expr, ExpressionPlacement, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, StructFieldMapping,
};

use crate::query::lanes;

/// The message of a query stopped at its deadline.
pub const PAST_DEADLINE: &str = "the query was stopped at its deadline";

/// The start of the message of a value too large to make.
pub const VALUE_TOO_LARGE: &str = "a function would make a value of";

#[derive(Debug, PartialEq, Eq, Hash)]
struct Guarded {
    inner: ScalarUDF,
    max_bytes: usize,
}

/// Replaces every scalar function of `state` with its guarded self.
pub fn guard_functions(state: &mut SessionState, max_bytes: usize) -> Result<()> {
    let functions: Vec<Arc<ScalarUDF>> = state.scalar_functions().values().cloned().collect();
    for function in functions {
        let guarded = Guarded { inner: function.as_ref().clone(), max_bytes };
        state.register_udf(Arc::new(ScalarUDF::new_from_impl(guarded)))?;
    }
    Ok(())
}

/// The most parts an expression may grow to when a function is simplified.
const MAX_EXPRESSION_NODES: usize = 10_000;

fn larger_than(expr: &Expr, cap: usize) -> bool {
    let mut nodes = 0usize;
    let _ = expr.apply(|_| {
        nodes += 1;
        Ok(if nodes > cap { TreeNodeRecursion::Stop } else { TreeNodeRecursion::Continue })
    });
    nodes > cap
}

fn in_time() -> Result<()> {
    if lanes::past_deadline() { Err(DataFusionError::Execution(PAST_DEADLINE.to_owned())) } else { Ok(()) }
}

impl Guarded {
    fn imp(&self) -> &dyn ScalarUDFImpl {
        self.inner.inner().as_ref()
    }

    fn too_large(&self, bytes: u128) -> Result<()> {
        if bytes > self.max_bytes as u128 {
            return Err(DataFusionError::ResourcesExhausted(format!(
                "{VALUE_TOO_LARGE} about {bytes} bytes in {}(), over the query's memory limit of {} bytes \
                 (query.max_memory_bytes)",
                self.inner.name(),
                self.max_bytes
            )));
        }
        Ok(())
    }

    /// The bytes the functions that amplify their arguments would make,
    /// from the arguments; `0` for the others.
    fn estimate(&self, args: &ScalarFunctionArgs) -> u128 {
        let a = &args.args;
        let rows = args.number_rows.max(1) as u128;
        match self.inner.name() {
            "repeat" if a.len() == 2 => text_bytes(&a[0], rows).saturating_mul(largest(&a[1])),
            // Up to four bytes a character.
            "lpad" | "rpad" if a.len() >= 2 => rows.saturating_mul(largest(&a[1])).saturating_mul(4),
            "array_repeat" if a.len() == 2 => rows.saturating_mul(largest(&a[1])).saturating_mul(16),
            "range" | "generate_series" if !a.is_empty() => {
                let (start, stop, step) = match a.len() {
                    1 => (0, largest(&a[0]), 1),
                    2 => (smallest(&a[0]), largest(&a[1]), 1),
                    _ => (smallest(&a[0]), largest(&a[1]), smallest(&a[2]).max(1)),
                };
                rows.saturating_mul(stop.saturating_sub(start) / step).saturating_mul(8)
            }
            _ => 0,
        }
    }
}

/// The largest whole number in a value (`0` for none), as a count.
fn largest(value: &ColumnarValue) -> u128 {
    numbers(value).into_iter().max().unwrap_or(0).max(0) as u128
}

fn smallest(value: &ColumnarValue) -> u128 {
    numbers(value).into_iter().min().unwrap_or(0).max(0) as u128
}

fn numbers(value: &ColumnarValue) -> Vec<i64> {
    let array = match value {
        ColumnarValue::Scalar(s) => match s.to_array() {
            Ok(a) => a,
            Err(_) => return Vec::new(),
        },
        ColumnarValue::Array(a) => a.clone(),
    };
    match datafusion::arrow::compute::cast(&array, &DataType::Int64) {
        Ok(cast) => cast.as_primitive::<Int64Type>().iter().flatten().collect(),
        Err(_) => Vec::new(),
    }
}

/// The bytes of text in a value, counted as `rows` copies of a scalar.
fn text_bytes(value: &ColumnarValue, rows: u128) -> u128 {
    match value {
        ColumnarValue::Scalar(
            ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s)),
        ) => rows.saturating_mul(s.len() as u128),
        ColumnarValue::Scalar(_) => 0,
        ColumnarValue::Array(a) => a.get_array_memory_size() as u128,
    }
}

fn size_of(value: &ColumnarValue) -> u128 {
    match value {
        ColumnarValue::Array(a) => a.get_array_memory_size() as u128,
        ColumnarValue::Scalar(s) => s.size() as u128,
    }
}

impl ScalarUDFImpl for Guarded {
    fn name(&self) -> &str {
        self.imp().name()
    }

    fn aliases(&self) -> &[String] {
        self.imp().aliases()
    }

    fn schema_name(&self, args: &[Expr]) -> Result<String> {
        self.imp().schema_name(args)
    }

    fn signature(&self) -> &Signature {
        self.imp().signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        in_time()?;
        self.imp().return_type(arg_types)
    }

    fn with_updated_config(&self, config: &datafusion::config::ConfigOptions) -> Option<ScalarUDF> {
        let inner = self.imp().with_updated_config(config)?;
        Some(ScalarUDF::new_from_impl(Guarded { inner, max_bytes: self.max_bytes }))
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        in_time()?;
        self.imp().return_field_from_args(args)
    }

    #[allow(deprecated)]
    fn is_nullable(&self, args: &[Expr], schema: &dyn datafusion::common::ExprSchema) -> bool {
        self.imp().is_nullable(args, schema)
    }

    fn is_strict(&self) -> bool {
        self.imp().is_strict()
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        in_time()?;
        if self.inner.name() == "version" {
            // The engine's build is not the server's to tell.
            return Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(format!("Weir {}", env!("CARGO_PKG_VERSION"))))));
        }
        self.too_large(self.estimate(&args))?;
        let value = self.imp().invoke_with_args(args)?;
        self.too_large(size_of(&value))?;
        Ok(value)
    }

    /// Some simplifications copy their arguments (`coalesce(a, b)` becomes
    /// `CASE WHEN a IS NOT NULL THEN a ELSE b END`), so nesting them doubles
    /// the expression per level; an expression past a size is refused
    /// before the copying runs away.
    fn simplify(&self, args: Vec<Expr>, info: &SimplifyContext) -> Result<ExprSimplifyResult> {
        in_time()?;
        let simplified = self.imp().simplify(args, info)?;
        if let ExprSimplifyResult::Simplified(expr) = &simplified
            && larger_than(expr, MAX_EXPRESSION_NODES)
        {
            return Err(DataFusionError::Plan(format!(
                "{}() makes an expression of more than {MAX_EXPRESSION_NODES} parts when planned; \
                 nest it less deeply",
                self.inner.name()
            )));
        }
        Ok(simplified)
    }

    fn preimage(&self, args: &[Expr], lit_expr: &Expr, info: &SimplifyContext) -> Result<PreimageResult> {
        self.imp().preimage(args, lit_expr, info)
    }

    fn short_circuits(&self) -> bool {
        self.imp().short_circuits()
    }

    fn conditional_arguments<'a>(&self, args: &'a [Expr]) -> Option<(Vec<&'a Expr>, Vec<&'a Expr>)> {
        self.imp().conditional_arguments(args)
    }

    fn evaluate_bounds(&self, input: &[&Interval]) -> Result<Interval> {
        self.imp().evaluate_bounds(input)
    }

    fn propagate_constraints(&self, interval: &Interval, inputs: &[&Interval]) -> Result<Option<Vec<Interval>>> {
        self.imp().propagate_constraints(interval, inputs)
    }

    fn output_ordering(&self, inputs: &[ExprProperties]) -> Result<SortProperties> {
        self.imp().output_ordering(inputs)
    }

    fn preserves_lex_ordering(&self, inputs: &[ExprProperties]) -> Result<bool> {
        self.imp().preserves_lex_ordering(inputs)
    }

    fn strictly_order_preserving(&self, inputs: &[ExprProperties]) -> Result<bool> {
        self.imp().strictly_order_preserving(inputs)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        in_time()?;
        self.imp().coerce_types(arg_types)
    }

    fn struct_field_mapping(&self, literal_args: &[Option<ScalarValue>]) -> Option<StructFieldMapping> {
        self.imp().struct_field_mapping(literal_args)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.imp().documentation()
    }

    fn placement(&self, args: &[ExpressionPlacement]) -> ExpressionPlacement {
        self.imp().placement(args)
    }
}

/// The bytes of the arrays of a batch of results.
pub fn array_bytes(columns: &[ArrayRef]) -> usize {
    columns.iter().map(|c| c.get_array_memory_size()).sum()
}
