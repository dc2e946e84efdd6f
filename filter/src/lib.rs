//! prtip-filter: prtip's one filter expression language over scan results.
//!
//! The same language is used by `prtip scan --filter`, `prtip export --filter`
//! and the monitor's filter builder (`prtip replay` has none). An expression is
//! parsed once into a compiled form (port bitmap, bit masks, CIDR masks,
//! precompiled regexes; cheap conditions evaluated first) and then applied to
//! many [`ResultRow`]s. The grammar is documented in `filter/README.md`.
//!
//! This crate owns parsing and matching only; it never reads logs, touches files
//! or renders anything.
//!
//! ```
//! use prtip_filter::Filter;
//! let f = Filter::parse(r#"port 1-1024 and proto tcp and state open and service ~ "http|ssl" and confidence >= 0.8"#).unwrap();
//! assert_eq!(f.source(), r#"port 1-1024 and proto tcp and state open and service ~ "http|ssl" and confidence >= 0.8"#);
//!
//! let err = Filter::parse("port 80 and prot tcp").unwrap_err();
//! assert_eq!(err.column(), 13);
//! assert_eq!(err.to_string(), "unknown field `prot` (did you mean `proto`?); fields are port, proto, state, addr, service, product, version, extra, banner, confidence, rtt, ttl, reason, hostname, has (column 13)
//!   port 80 and prot tcp
//!               ^^^^");
//! ```

#![warn(missing_docs)]

mod error;
mod node;
mod parse;

pub use error::ParseError;
pub use parse::{FIELDS, MAX_DEPTH};
use prtip_store::ResultRow;

/// A parsed, compiled filter expression. Cheap to clone; `Send + Sync`.
#[derive(Clone, Debug)]
pub struct Filter {
    source: String,
    root: node::Node,
}

impl Filter {
    /// Parse and compile `expr`. Errors carry the 1-based column of the offending
    /// token and print a caret line under it.
    pub fn parse(expr: &str) -> Result<Filter, ParseError> {
        let root = parse::Parser::new(expr).parse()?.optimize().lower();
        Ok(Filter {
            source: expr.trim().to_string(),
            root,
        })
    }

    /// A filter that matches every row (source text `all`).
    pub fn all() -> Filter {
        Filter {
            source: "all".to_string(),
            root: node::Node::True,
        }
    }

    /// Does `row` satisfy the expression?
    #[inline]
    pub fn matches(&self, row: &ResultRow) -> bool {
        self.root.eval(row)
    }

    /// The expression as given (surrounding whitespace trimmed).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// True when the filter matches every row (`all`, `true`, `port 0-65535`…
    /// only the first two are recognised).
    pub fn is_all(&self) -> bool {
        matches!(self.root, node::Node::True)
    }
}

impl std::str::FromStr for Filter {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Filter::parse(s)
    }
}

impl std::fmt::Display for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.source)
    }
}

#[cfg(test)]
mod tests;
