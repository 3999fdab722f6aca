//! A model answer's purchase-model parameters, whichever family's message
//! carries them (`bgnbd`, `mbgnbd` or `pareto_nbd`: exactly one is set for
//! a fitted version or candidate). The one place the client maps those
//! messages, for the tables (`clvd fit`, `clvd model`, `clvd models`) and
//! the figures (the P(alive) and expected-purchases matrices).

use clv_model::{ModelError, PurchaseFamily, PurchaseParams};

use crate::pb;

/// The four purchase-model parameters of one family, in the model crate's
/// order: r, alpha, a, b (BG/NBD, MBG/NBD) or r, alpha, s, beta
/// (Pareto/NBD).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FamilyValues {
    pub family: PurchaseFamily,
    pub values: [f64; 4],
}

impl FamilyValues {
    /// The parameters in whichever of the three messages is set; `None`
    /// when none is (a failed version or candidate).
    pub fn of(
        bg: Option<&pb::BgNbdParameters>,
        mbg: Option<&pb::MbgNbdParameters>,
        pareto: Option<&pb::ParetoNbdParameters>,
    ) -> Option<Self> {
        let (family, values) = match (bg, mbg, pareto) {
            (Some(p), _, _) => (PurchaseFamily::BgNbd, [p.r, p.alpha, p.a, p.b]),
            (_, Some(p), _) => (PurchaseFamily::MbgNbd, [p.r, p.alpha, p.a, p.b]),
            (_, _, Some(p)) => (PurchaseFamily::ParetoNbd, [p.r, p.alpha, p.s, p.beta]),
            _ => return None,
        };
        Some(Self { family, values })
    }

    /// The activated family's parameters of a model answer.
    pub fn of_model(m: &pb::Model) -> Option<Self> {
        Self::of(m.bgnbd.as_ref(), m.mbgnbd.as_ref(), m.pareto_nbd.as_ref())
    }

    /// The standard errors of a model answer's activated family, in the
    /// same shape (the family is that of the message set).
    pub fn standard_errors_of_model(m: &pb::Model) -> Option<Self> {
        Self::of(
            m.bgnbd_standard_errors.as_ref(),
            m.mbgnbd_standard_errors.as_ref(),
            m.pareto_nbd_standard_errors.as_ref(),
        )
    }

    /// The parameters' names, in the order of `values`.
    pub fn names(&self) -> [&'static str; 4] {
        match self.family {
            PurchaseFamily::ParetoNbd => ["r", "alpha", "s", "beta"],
            PurchaseFamily::BgNbd | PurchaseFamily::MbgNbd => ["r", "alpha", "a", "b"],
        }
    }

    /// (name, value) pairs, in order.
    pub fn pairs(&self) -> Vec<(&'static str, f64)> {
        self.names().into_iter().zip(self.values).collect()
    }

    /// The value of the parameter `name`, `None` when the family has none
    /// of that name (`s` of BG/NBD, `a` of Pareto/NBD).
    pub fn get(&self, name: &str) -> Option<f64> {
        self.pairs()
            .into_iter()
            .find_map(|(n, v)| (n == name).then_some(v))
    }

    /// The model crate's parameters, to draw predictions with; an error
    /// when the values are out of the family's domain.
    pub fn params(&self) -> Result<PurchaseParams, ModelError> {
        PurchaseParams::from_values(self.family, self.values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_message_maps_to_its_family_and_names() {
        let bg = pb::BgNbdParameters {
            r: 1.0,
            alpha: 2.0,
            a: 3.0,
            b: 4.0,
        };
        let pareto = pb::ParetoNbdParameters {
            r: 5.0,
            alpha: 6.0,
            s: 7.0,
            beta: 8.0,
        };
        let v = FamilyValues::of(Some(&bg), None, None).unwrap();
        assert_eq!(v.family, PurchaseFamily::BgNbd);
        assert_eq!(
            v.pairs(),
            vec![("r", 1.0), ("alpha", 2.0), ("a", 3.0), ("b", 4.0)]
        );
        assert_eq!(v.get("s"), None);
        let v = FamilyValues::of(None, None, Some(&pareto)).unwrap();
        assert_eq!(v.family, PurchaseFamily::ParetoNbd);
        assert_eq!(v.get("s"), Some(7.0));
        assert_eq!(v.get("a"), None);
        assert_eq!(v.params().unwrap().values(), [5.0, 6.0, 7.0, 8.0]);
        assert_eq!(FamilyValues::of(None, None, None), None);
    }
}
