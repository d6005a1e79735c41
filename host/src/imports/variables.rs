//! `spin:variables/variables@3.0.0`: a component reads the variables of its
//! manifest entry (templates already expanded), overlaid by those of the
//! trigger that invoked it.

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::component::{Accessor, HasData, Linker};

use crate::bindings::spin::spin::variables::variables::{self, Error};

/// Variables visible to one invocation.
pub type Variables = Arc<BTreeMap<String, String>>;

/// Whether `name` is a valid variable name: lower-case letters, digits and
/// `_`, starting with a letter (Spin's rule).
pub fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Looks up `name`, with Spin's rules on names and errors.
pub fn lookup(variables: &BTreeMap<String, String>, name: &str) -> Result<String, Error> {
    if !is_valid_name(name) {
        return Err(Error::InvalidName(format!(
            "`{name}` is not a valid variable name"
        )));
    }
    variables.get(name).cloned().ok_or_else(|| {
        Error::Undefined(format!(
            "variable `{name}` is not defined for this component"
        ))
    })
}

struct HasVariables;

impl HasData for HasVariables {
    type Data<'a> = &'a mut Variables;
}

impl<U> variables::HostWithStore<U> for HasVariables {
    async fn get(accessor: &Accessor<U, Self>, name: String) -> Result<String, Error> {
        accessor.with(|mut access| lookup(access.get(), &name))
    }
}

impl variables::Host for &mut Variables {}

/// Adds the interface to `linker`; `variables` finds the invocation's.
pub(crate) fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    variables: fn(&mut T) -> &mut Variables,
) -> wasmtime::Result<()> {
    variables::add_to_linker::<T, HasVariables>(linker, variables)
}
