//! Parses and validates a Spin v2 `spin.toml`: application, variables,
//! components and weir's `[[trigger.cron]]` / `[[trigger.kafka]]` tables.
//! Paths resolve relative to the manifest. Does not load or run components.

mod error;
mod keys;
mod raw;
mod variables;

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

pub use crate::imports::variables::is_valid_name as is_valid_variable_name;
pub use crate::runtime::{DEFAULT_MAX_MEMORY, DEFAULT_TIMEOUT, Limits};
pub use error::{Location, ManifestError, Problem};
pub use variables::override_env_name;

use crate::imports::outbound_http::{AllowedHost, HttpLimits};
use crate::runtime::ComponentSettings;
use crate::trigger::{ConfigCheck, Trigger};
use raw::{RawCommand, RawComponent, RawManifest};

/// A validated manifest.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The manifest file as the user named it.
    pub file: PathBuf,
    /// The directory relative paths resolve against.
    pub dir: PathBuf,
    /// `[application]`.
    pub application: Application,
    /// `[component.<id>]`, by id.
    pub components: BTreeMap<String, ComponentConfig>,
    /// Every trigger, cron first, each in file order.
    pub triggers: Vec<Trigger>,
}

/// `[application]`.
#[derive(Debug, Clone)]
pub struct Application {
    /// Application name; part of Kafka and Delta app ids, so keep it stable.
    pub name: String,
    /// Free-form version.
    pub version: Option<String>,
    /// Free-form description.
    pub description: Option<String>,
    /// `[application.trigger.kafka]`, if present.
    pub kafka: Option<crate::trigger::kafka::KafkaApplicationConfig>,
}

/// One `[component.<id>]`, with variables expanded and paths resolved.
#[derive(Debug, Clone)]
pub struct ComponentConfig {
    /// The component id.
    pub id: String,
    /// Absolute path of the `.wasm` component.
    pub source: PathBuf,
    /// Where `source` is written, for errors about the file itself.
    pub source_location: Location,
    /// `allowed_outbound_hosts`, as written (`scheme://host[:port]`).
    pub allowed_outbound_hosts: Vec<String>,
    /// Component variables, templates expanded.
    pub variables: BTreeMap<String, String>,
    /// Environment variables the guest sees through WASI.
    pub environment: BTreeMap<String, String>,
    /// `[component.<id>.build]`, if present.
    pub build: Option<BuildConfig>,
    /// Hard limits of one invocation.
    pub limits: Limits,
}

/// `[component.<id>.build]`.
#[derive(Debug, Clone)]
pub struct BuildConfig {
    /// Shell commands, run in order.
    pub commands: Vec<String>,
    /// Directory to run them in (the manifest's directory by default).
    pub workdir: PathBuf,
    /// Glob patterns of files the build reads, relative to `workdir`: `weir up`
    /// rebuilds when one is newer than the source.
    pub watch: Vec<String>,
}

impl From<&ComponentConfig> for ComponentSettings {
    fn from(c: &ComponentConfig) -> Self {
        Self {
            limits: c.limits,
            environment: c.environment.clone().into_iter().collect(),
            variables: c.variables.clone(),
            allowed_outbound_hosts: c.allowed_outbound_hosts.clone(),
            http: HttpLimits::from(&c.limits),
        }
    }
}

impl Manifest {
    /// Reads and validates the manifest at `file`. `env` supplies
    /// `SPIN_VARIABLE_*` overrides (pass `std::env::vars()` from `main`).
    pub fn load(
        file: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ManifestError> {
        let source = std::fs::read_to_string(file).map_err(|source| ManifestError::Read {
            path: file.to_path_buf(),
            source,
        })?;
        Self::parse(file, &source, env)
    }

    /// Validates manifest text that was read from `file`.
    pub fn parse(
        file: &Path,
        source: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ManifestError> {
        let mut v = Validator {
            file,
            source,
            problems: Vec::new(),
            declared: Default::default(),
            values: Default::default(),
            secrets: Default::default(),
        };
        let raw: RawManifest = match toml::from_str(source) {
            Ok(raw) => raw,
            Err(e) => {
                let span = e.span().unwrap_or(0..0);
                let mut key = keys::key_at(source, &span);
                if key.is_empty() {
                    key = source
                        .get(span.clone())
                        .unwrap_or_default()
                        .trim()
                        .to_owned();
                }
                let mut message = e.message().trim_end().to_owned();
                if message == "duplicate key" {
                    message = format!("`{key}` is defined more than once");
                }
                v.problems.push(v.problem(&span, key, message));
                return Err(ManifestError::Invalid(v.problems));
            }
        };
        let dir = file
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
        let env: BTreeMap<String, String> = env.into_iter().collect();
        let manifest = v.manifest(raw, &dir, &env);
        if v.problems.is_empty() {
            Ok(manifest)
        } else {
            Err(ManifestError::Invalid(v.problems))
        }
    }

    /// Checks that every component's source file exists: not part of
    /// [`Manifest::load`] because `weir build` loads the manifest first.
    pub fn check_sources(&self) -> Result<(), ManifestError> {
        let problems: Vec<Problem> = self
            .components
            .values()
            .filter(|c| !c.source.is_file())
            .map(|c| Problem {
                location: c.source_location.clone(),
                key: format!("component.{}.source", c.id),
                message: format!(
                    "source file `{}` does not exist; run `weir build` first",
                    c.source.display()
                ),
            })
            .collect();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ManifestError::Invalid(problems))
        }
    }

    /// The component `id`.
    pub fn component(&self, id: &str) -> Option<&ComponentConfig> {
        self.components.get(id)
    }
}

/// Collects problems while turning the raw manifest into a [`Manifest`].
pub(crate) struct Validator<'a> {
    file: &'a Path,
    source: &'a str,
    problems: Vec<Problem>,
    /// Every declared component id, valid or not, so a trigger naming a
    /// broken component is not also reported as naming an unknown one.
    declared: std::collections::BTreeSet<String>,
    /// Application variable values, for expanding templates.
    values: variables::Values,
    /// The variables marked `secret = true`.
    secrets: std::collections::BTreeSet<String>,
}

impl Validator<'_> {
    fn problem(&self, span: &Range<usize>, key: String, message: String) -> Problem {
        Problem {
            location: Location::at(self.file, self.source, span.start),
            key,
            message,
        }
    }

    fn location(&self, span: &Range<usize>) -> Location {
        Location::at(self.file, self.source, span.start)
    }

    fn manifest(
        &mut self,
        raw: RawManifest,
        dir: &Path,
        env: &BTreeMap<String, String>,
    ) -> Manifest {
        if raw.spin_manifest_version.get_ref().as_integer() != Some(2) {
            self.report(
                &raw.spin_manifest_version.span(),
                "spin_manifest_version",
                format!(
                    "unsupported version `{}`: weir reads Spin manifest version 2",
                    raw.spin_manifest_version.get_ref()
                ),
            );
        }
        let app = raw.application;
        if app.name.get_ref().trim().is_empty() {
            self.report(&app.name.span(), "application.name", "must not be empty");
        }
        self.values = self.variables(raw.variables, env);
        self.declared = raw
            .component
            .keys()
            .map(|id| id.get_ref().clone())
            .collect();
        let components: BTreeMap<String, ComponentConfig> = raw
            .component
            .into_iter()
            .filter_map(|(id, c)| self.component(id, c, dir))
            .map(|c| (c.id.clone(), c))
            .collect();
        for kind in raw.trigger.other.keys() {
            let at = self.source.find(&format!("trigger.{kind}")).unwrap_or(0);
            self.report(
                &(at..at),
                format!("trigger.{kind}"),
                format!("unknown trigger type `{kind}`: weir runs `cron` and `kafka` triggers"),
            );
        }
        let mut triggers = Vec::new();
        for (i, t) in raw.trigger.cron.iter().enumerate() {
            let key = format!("trigger.cron[{i}]");
            if let Some(valid) = t.get_ref().validate(self, &key, i) {
                triggers.push((Trigger::Cron(valid), t.span(), key));
            }
        }
        for (i, t) in raw.trigger.kafka.iter().enumerate() {
            let key = format!("trigger.kafka[{i}]");
            if let Some(valid) = t.get_ref().validate(self, &key, i, dir) {
                triggers.push((Trigger::Kafka(valid), t.span(), key));
            }
        }
        let mut first_use: BTreeMap<&str, usize> = BTreeMap::new();
        for (trigger, span, key) in &triggers {
            let line = self.location(span).line;
            if let Some(first) = first_use.insert(trigger.id(), line) {
                self.report(
                    span,
                    format!("{key}.id"),
                    format!(
                        "duplicate trigger id `{}` (first used by the trigger at line {first})",
                        trigger.id()
                    ),
                );
            }
        }
        let triggers = triggers.into_iter().map(|(t, _, _)| t).collect();
        Manifest {
            file: self.file.to_path_buf(),
            dir: dir.to_path_buf(),
            application: Application {
                name: app.name.into_inner(),
                version: app.version,
                description: app.description,
                kafka: app.trigger.kafka,
            },
            components,
            triggers,
        }
    }

    fn variables(
        &mut self,
        raw: BTreeMap<Spanned<String>, Spanned<raw::RawVariable>>,
        env: &BTreeMap<String, String>,
    ) -> variables::Values {
        let mut values = variables::Values::new();
        for (name, var) in raw {
            let key = format!("variables.{}", name.get_ref());
            if !variables::is_valid_name(name.get_ref()) {
                self.report(&name.span(), &key, format!("invalid variable name `{}`: use lower-case letters, digits and `_`, starting with a letter", name.get_ref()));
            }
            let span = var.span();
            let var = var.into_inner();
            if var.secret {
                self.secrets.insert(name.get_ref().clone());
            }
            if var.required && var.default.is_some() {
                self.report(
                    &span,
                    &key,
                    "a variable cannot be both `required` and have a `default`",
                );
            } else if !var.required && var.default.is_none() {
                self.report(
                    &span,
                    &key,
                    "a variable needs a `default` or `required = true`",
                );
            }
            let value = env
                .get(&override_env_name(name.get_ref()))
                .cloned()
                .or(var.default);
            values.insert(name.into_inner(), value);
        }
        values
    }

    fn component(
        &mut self,
        id: Spanned<String>,
        spanned: Spanned<RawComponent>,
        dir: &Path,
    ) -> Option<ComponentConfig> {
        let before = self.problems.len();
        let prefix = format!("component.{}", id.get_ref());
        if !is_valid_component_id(id.get_ref()) {
            self.report(
                &id.span(),
                &prefix,
                format!(
                    "invalid component id `{}`: use lower-case kebab-case such as `gtfs-fetch`",
                    id.get_ref()
                ),
            );
        }
        let c = spanned.into_inner();
        let source = match c.source.get_ref() {
            toml::Value::String(path) if !path.trim().is_empty() => dir.join(path),
            toml::Value::Table(_) => {
                self.report(&c.source.span(), format!("{prefix}.source"), "remote (`url`) sources are not supported: build the component and give its local path");
                PathBuf::new()
            }
            other => {
                self.report(
                    &c.source.span(),
                    format!("{prefix}.source"),
                    format!("expected a path to a `.wasm` file, found `{other}`"),
                );
                PathBuf::new()
            }
        };
        for host in &c.allowed_outbound_hosts {
            if let Err(why) = AllowedHost::parse(host.get_ref()) {
                self.report(
                    &host.span(),
                    format!("{prefix}.allowed_outbound_hosts"),
                    why,
                );
            }
        }
        let variables = self.expand_variables(&c.variables, &prefix);
        for (key, value) in [
            ("files", &c.files),
            ("key_value_stores", &c.key_value_stores),
            ("sqlite_databases", &c.sqlite_databases),
        ] {
            if let Some(value) = value {
                self.report(
                    &value.span(),
                    format!("{prefix}.{key}"),
                    format!("`{key}` is a Spin feature weir does not provide"),
                );
            }
        }
        let build = c.build.map(|b| BuildConfig {
            commands: match b.command.into_inner() {
                RawCommand::One(command) => vec![command],
                RawCommand::Many(commands) => commands,
            },
            workdir: b.workdir.map_or_else(|| dir.to_path_buf(), |w| dir.join(w)),
            watch: b.watch,
        });
        let limits = self.limits(&prefix, c.tool.weir);
        (self.problems.len() == before).then(|| ComponentConfig {
            source_location: self.location(&c.source.span()),
            id: id.into_inner(),
            source,
            allowed_outbound_hosts: c
                .allowed_outbound_hosts
                .into_iter()
                .map(Spanned::into_inner)
                .collect(),
            variables,
            environment: c.environment,
            build,
            limits,
        })
    }

    fn limits(&mut self, prefix: &str, tool: Option<Spanned<raw::RawWeirTool>>) -> Limits {
        let mut limits = Limits::default();
        let Some(tool) = tool.map(Spanned::into_inner) else {
            return limits;
        };
        let key = |name: &str| format!("{prefix}.tool.weir.{name}");
        if let Some(timeout) = self.millis(tool.timeout_ms, key("timeout_ms")) {
            limits.timeout = timeout;
        }
        if let Some(timeout) = self.millis(tool.http_timeout_ms, key("http_timeout_ms")) {
            limits.http_timeout = timeout;
        }
        if let Some(bytes) = self.bytes(tool.max_response_bytes, key("max_response_bytes")) {
            limits.max_response_bytes = bytes;
        }
        if let Some(bytes) = self.bytes(tool.max_output_bytes, key("max_output_bytes")) {
            limits.max_output_bytes = bytes;
        }
        if let Some(rows) = tool.max_rows_per_message {
            limits.max_rows_per_message = rows.into_inner();
        }
        if let Some(requests) = tool.max_outbound_requests {
            match usize::try_from(*requests.get_ref()) {
                Ok(n) if n > 0 => limits.max_outbound_requests = n,
                _ => self.report(
                    &requests.span(),
                    key("max_outbound_requests"),
                    "must be at least 1",
                ),
            }
        }
        let memory_span = tool
            .max_memory
            .as_ref()
            .map(Spanned::span)
            .unwrap_or_default();
        match self.bytes(tool.max_memory, key("max_memory")) {
            Some(bytes) if bytes >= 64 << 10 => limits.max_memory = bytes,
            Some(bytes) => self.report(
                &memory_span,
                key("max_memory"),
                format!("`{bytes}` bytes is less than one Wasm page (64 KiB)"),
            ),
            None => {}
        }
        limits
    }

    /// A millisecond count at `key`; zero is reported.
    fn millis(&mut self, value: Option<Spanned<u64>>, key: String) -> Option<Duration> {
        let ms = value?;
        if *ms.get_ref() == 0 {
            self.report(&ms.span(), key, "must be at least 1");
        }
        Some(Duration::from_millis(*ms.get_ref()))
    }

    /// A byte size at `key` (`64 MiB` or a number); a bad one is reported.
    fn bytes(&mut self, value: Option<Spanned<toml::Value>>, key: String) -> Option<u64> {
        let size = value?;
        parse_bytes(size.get_ref())
            .map_err(|why| self.report(&size.span(), key, why))
            .ok()
    }
}

impl ConfigCheck for Validator<'_> {
    /// Records a problem at `span` for `key`.
    fn report(&mut self, span: &Range<usize>, key: impl Into<String>, message: impl Into<String>) {
        let problem = self.problem(span, key.into(), message.into());
        self.problems.push(problem);
    }

    /// Expands a `variables = { name = "template" }` table found at `prefix`.
    fn expand_variables(
        &mut self,
        templates: &BTreeMap<Spanned<String>, Spanned<String>>,
        prefix: &str,
    ) -> BTreeMap<String, String> {
        let mut expanded = BTreeMap::new();
        for (name, template) in templates {
            let key = format!("{prefix}.variables.{}", name.get_ref());
            if !variables::is_valid_name(name.get_ref()) {
                self.report(&name.span(), &key, format!("invalid variable name `{}`: use lower-case letters, digits and `_`, starting with a letter", name.get_ref()));
            }
            if let Some(value) = self.expand_template(template, &key, false) {
                expanded.insert(name.get_ref().clone(), value);
            }
        }
        expanded
    }

    /// Expands one template; a `secret` one may only name secret variables.
    fn expand_template(
        &mut self,
        template: &Spanned<String>,
        key: &str,
        secret: bool,
    ) -> Option<String> {
        let checked = if secret {
            variables::only_secrets(template.get_ref(), &self.secrets)
        } else {
            Ok(())
        };
        match checked.and_then(|()| variables::expand(template.get_ref(), &self.values)) {
            Ok(value) => Some(value),
            Err(why) => {
                self.report(&template.span(), key, why);
                None
            }
        }
    }

    /// Problems recorded so far.
    fn problem_count(&self) -> usize {
        self.problems.len()
    }

    /// Reports a trigger's `component` that names no declared component.
    fn check_component(&mut self, component: &Spanned<String>, key: &str) {
        if !self.declared.contains(component.get_ref()) {
            let known: Vec<&str> = self.declared.iter().map(String::as_str).collect();
            self.report(
                &component.span(),
                format!("{key}.component"),
                format!(
                    "unknown component `{}`; declared components: [{}]",
                    component.get_ref(),
                    known.join(", ")
                ),
            );
        }
    }
}

/// Spin's component id rule: lower-case kebab-case, starting with a letter.
fn is_valid_component_id(id: &str) -> bool {
    id.split('-').all(|part| {
        !part.is_empty()
            && part
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    }) && id.starts_with(|c: char| c.is_ascii_lowercase())
}

/// Parses a byte size: an integer, or a string such as `"64 MiB"`.
fn parse_bytes(value: &toml::Value) -> Result<u64, String> {
    let text = match value {
        toml::Value::Integer(n) => {
            return u64::try_from(*n).map_err(|_| format!("`{n}` is negative"));
        }
        toml::Value::String(s) => s.trim(),
        other => {
            return Err(format!(
                "expected bytes such as `\"64 MiB\"`, found `{other}`"
            ));
        }
    };
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a size such as `\"64 MiB\"`"))?;
    let shift = match unit.trim() {
        "" | "B" => 0,
        "KiB" => 10,
        "MiB" => 20,
        "GiB" => 30,
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{text}`: use B, KiB, MiB or GiB"
            ));
        }
    };
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("`{text}` is too large"))
}

#[cfg(test)]
mod tests {
    use super::{is_valid_component_id, parse_bytes};

    #[test]
    fn byte_sizes() {
        assert_eq!(
            parse_bytes(&toml::Value::String("64 MiB".into())),
            Ok(64 << 20)
        );
        assert_eq!(
            parse_bytes(&toml::Value::String("1GiB".into())),
            Ok(1 << 30)
        );
        assert_eq!(parse_bytes(&toml::Value::Integer(65536)), Ok(65536));
        assert!(
            parse_bytes(&toml::Value::String("64 MB".into()))
                .unwrap_err()
                .contains("unknown unit `MB`")
        );
    }

    #[test]
    fn component_ids() {
        assert!(is_valid_component_id("gtfs-fetch"));
        assert!(is_valid_component_id("a1-b2"));
        assert!(!is_valid_component_id("Gtfs"));
        assert!(!is_valid_component_id("a--b"));
        assert!(!is_valid_component_id("1a"));
        assert!(!is_valid_component_id("a_b"));
    }
}
