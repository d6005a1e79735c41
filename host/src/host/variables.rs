//! `spin:variables/variables@3.0.0`: a component reads the variables of its
//! manifest entry (templates already expanded), overlaid by those of the
//! trigger that invoked it.

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::component::{Accessor, HasData, Linker};

use crate::bindings::spin::spin::variables::variables::{self, Error};
use crate::runtime::State;

/// Variables visible to one invocation.
pub type Variables = Arc<BTreeMap<String, String>>;

/// Looks up `name`, with Spin's rules on names and errors.
pub fn lookup(variables: &BTreeMap<String, String>, name: &str) -> Result<String, Error> {
    if !crate::manifest::is_valid_variable_name(name) {
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
    type Data<'a> = &'a mut State;
}

impl<U> variables::HostWithStore<U> for HasVariables {
    async fn get(accessor: &Accessor<U, Self>, name: String) -> Result<String, Error> {
        accessor.with(|mut access| lookup(&access.get().variables, &name))
    }
}

impl variables::Host for &mut State {}

/// Adds the interface to `linker`.
pub(crate) fn add_to_linker(linker: &mut Linker<State>) -> wasmtime::Result<()> {
    variables::add_to_linker::<_, HasVariables>(linker, |state| state)
}
