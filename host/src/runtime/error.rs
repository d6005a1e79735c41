//! Errors of loading and invoking components. A guest failure is a value
//! here, never a panic or a host crash.

use std::fmt;

/// How an invocation was stopped by the sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrapKind {
    /// The deadline (`timeout_ms`) passed.
    Timeout,
    /// The guest tried to grow memory past `max_memory` and then failed.
    Memory,
    /// Any other trap: `unreachable`, out-of-bounds access, stack overflow, a host-side error.
    Trap,
}

impl TrapKind {
    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Memory => "memory",
            Self::Trap => "trap",
        }
    }
}

impl fmt::Display for TrapKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an invocation produced no result.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    /// The guest ran to completion and returned its own error.
    #[error("function `{function}` returned an error: {message}")]
    Guest {
        /// The component id.
        function: String,
        /// The guest's error text.
        message: String,
    },
    /// The sandbox stopped the guest.
    #[error("function `{function}` stopped ({kind}): {message}")]
    Trap {
        /// The component id.
        function: String,
        /// Timeout, memory or other trap.
        kind: TrapKind,
        /// What wasmtime reported, with the guest backtrace if any.
        message: String,
    },
}

impl InvokeError {
    /// The `outcome` label of `weir_invocations_total`.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::Guest { .. } => "error",
            Self::Trap { kind, .. } => kind.as_str(),
        }
    }
}

/// Why a component could not be loaded for a trigger.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read component `{function}` from `{path}`")]
    Read {
        /// The component id.
        function: String,
        /// The `.wasm` path.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The bytes are not a valid WebAssembly component.
    #[error("`{function}` is not a valid WebAssembly component: {reason}")]
    Compile {
        /// The component id.
        function: String,
        /// wasmtime's explanation.
        reason: String,
    },
    /// The component lacks an export the trigger's world needs.
    #[error("component `{function}` does not fit the `{world}` world: {reason}")]
    WrongWorld {
        /// The component id.
        function: String,
        /// The world its trigger needs.
        world: &'static str,
        /// The missing or mistyped export, and what the component exports instead.
        reason: String,
    },
    /// An `allowed_outbound_hosts` entry does not parse.
    #[error("component `{function}`: {reason}")]
    AllowedHosts {
        /// The component id.
        function: String,
        /// Which entry, and why.
        reason: String,
    },
    /// The component imports something weir does not provide.
    #[error("component `{function}` has imports weir cannot satisfy: {reason}")]
    Imports {
        /// The component id.
        function: String,
        /// wasmtime's explanation, naming the import.
        reason: String,
    },
}
