//! A rejected input field: the path of the field and what is wrong with it.

/// One offending field. `field` is a dotted path relative to the value that
/// was parsed (for example `amount.nanos`); callers prefix it with where that
/// value sits in their request (`transaction.amount.nanos`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: String,
    pub description: String,
}

impl FieldViolation {
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            description: description.into(),
        }
    }

    /// The same violation, one level deeper in a request: `prefix.field`.
    pub fn under(mut self, prefix: &str) -> Self {
        self.field = if self.field.is_empty() {
            prefix.to_owned()
        } else {
            format!("{prefix}.{}", self.field)
        };
        self
    }
}
