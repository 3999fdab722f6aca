//! The parameter block the three purchase families share, written once: a
//! struct of four positive parameters with its validating constructor, a
//! constructor taking the time scales in weeks, and the accessors
//! (`four_parameters!`). Each family keeps its own formulas.

/// Defines `pub struct $name` with four private `f64` fields, `new`
/// (each positive and finite, else [`crate::ModelError::InvalidParameter`]
/// naming `$kind` and the field), `from_weeks` (fields marked
/// `in weeks $accessor` are time scales: given in weeks, stored in days,
/// and read back in weeks by `$accessor`), an accessor per field and
/// `array()` in field order.
macro_rules! four_parameters {
    (
        $(#[$meta:meta])*
        pub struct $name:ident($kind:expr) {
            $(
                #[doc = $doc:literal]
                $field:ident $(in weeks $weeks:ident)?
            ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq)]
        pub struct $name {
            $($field: f64,)+
        }

        impl $name {
            /// Validates parameters (all positive and finite; time scales in days).
            pub fn new($($field: f64),+) -> Result<Self, $crate::error::ModelError> {
                let m = $kind;
                Ok(Self {
                    $($field: $crate::error::check_positive(m, stringify!($field), $field)?,)+
                })
            }

            /// Parameters with the time scales given in weeks.
            pub fn from_weeks($($field: f64),+) -> Result<Self, $crate::error::ModelError> {
                Self::new($($field $(* { stringify!($weeks); $crate::bgnbd::DAYS_PER_WEEK })?),+)
            }

            $(
                #[doc = $doc]
                pub fn $field(&self) -> f64 {
                    self.$field
                }
                $(
                    #[doc = concat!("`", stringify!($field), "` in weeks (a time scale: days / 7).")]
                    pub fn $weeks(&self) -> f64 {
                        self.$field / $crate::bgnbd::DAYS_PER_WEEK
                    }
                )?
            )+

            /// The parameters in field order.
            #[allow(dead_code)] // not every family needs it
            pub(crate) fn array(&self) -> [f64; 4] {
                [$(self.$field),+]
            }
        }
    };
}

pub(crate) use four_parameters;
