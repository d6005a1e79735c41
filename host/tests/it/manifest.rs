//! Manifest validation: the repo's own `spin.toml`, and every malformed
//! manifest in `tests/ui/` against the exact error text beside it (`.err`).
//! Run with `WEIR_BLESS=1` to rewrite the `.err` files after a deliberate change.

use std::path::Path;

use weir::Manifest;
use weir::sink::delta::TableSettings;
use weir::trigger::Trigger;

fn load(path: &Path, env: &[(&str, &str)]) -> Result<Manifest, weir::ManifestError> {
    let env = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned()));
    Manifest::load(path, env).and_then(|m| m.check_sources().map(|()| m))
}

#[test]
fn the_repos_own_manifest_parses() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../spin.toml");
    let manifest = Manifest::load(&path, Vec::new()).unwrap();
    assert!(!manifest.components.is_empty());
    assert!(!manifest.triggers.is_empty());
    for trigger in &manifest.triggers {
        assert!(manifest.components.contains_key(trigger.component()));
    }
}

#[test]
fn malformed_manifests_give_their_specific_errors() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui");
    let bless = std::env::var_os("WEIR_BLESS").is_some();
    let mut checked = 0;
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
    {
        let relative = Path::new("tests/ui").join(path.file_name().unwrap());
        let err = match load(&relative, &[]) {
            Ok(_) => panic!("{} should not load", relative.display()),
            Err(e) => e.to_string().replace(&dir.display().to_string(), "$DIR"),
        };
        let expected_path = path.with_extension("err");
        if bless {
            std::fs::write(&expected_path, format!("{err}\n")).unwrap();
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_else(|_| {
            panic!("missing {}; run with WEIR_BLESS=1", expected_path.display())
        });
        assert_eq!(err, expected.trim_end(), "error for {}", relative.display());
        checked += 1;
    }
    assert!(checked >= 8, "only {checked} malformed manifests");
}

const VALID: &str = r#"
spin_manifest_version = 2

[application]
name = "app"

[variables]
feed_url = { default = "http://127.0.0.1:8717/vp.pb" }
api_key = { required = true, secret = true }

[[trigger.cron]]
component = "fetch"
cron_expression = "*/15 * * * * *"
outputs = ["vehicle_topic"]

[[trigger.kafka]]
component = "transform"
topics = ["vehicle_topic"]
batch = { max_records = 500, max_ms = 250 }
tables = { vehicle_positions = { uri = "data/delta/vp", partition_by = ["date"], schema = "vp.json" } }
dead_letter = { uri = "data/delta/dead_letters" }

[component.fetch]
source = "fetch.wasm"
allowed_outbound_hosts = ["http://127.0.0.1:8717"]
variables = { feed_url = "{{ feed_url }}", auth = "Bearer {{ api_key }}" }
environment = { RUST_BACKTRACE = "1" }
[component.fetch.build]
command = "cargo build"
workdir = "functions/fetch"
[component.fetch.tool.weir]
timeout_ms = 2500
max_memory = "32 MiB"

[component.transform]
source = "transform.wasm"
"#;

#[test]
fn variables_templates_paths_and_limits_resolve() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spin.toml");
    std::fs::write(&path, VALID).unwrap();
    std::fs::write(
        dir.path().join("vp.json"),
        r#"{"version": 1, "columns": [{"name": "date", "type": "date", "nullable": false}]}"#,
    )
    .unwrap();
    let env = [
        ("SPIN_VARIABLE_API_KEY", "s3cret"),
        ("SPIN_VARIABLE_FEED_URL", "http://127.0.0.1:9/x.pb"),
    ];
    let manifest = Manifest::load(&path, env.map(|(k, v)| (k.to_owned(), v.to_owned()))).unwrap();
    let fetch = &manifest.components["fetch"];
    assert_eq!(fetch.variables["feed_url"], "http://127.0.0.1:9/x.pb");
    assert_eq!(fetch.variables["auth"], "Bearer s3cret");
    assert_eq!(fetch.source, dir.path().join("fetch.wasm"));
    assert_eq!(
        fetch.build.as_ref().unwrap().workdir,
        dir.path().join("functions/fetch")
    );
    assert_eq!(fetch.limits.timeout.as_millis(), 2500);
    assert_eq!(fetch.limits.max_memory, 32 << 20);
    assert_eq!(
        manifest.components["transform"].limits,
        weir::manifest::Limits::default()
    );
    let [Trigger::Cron(cron), Trigger::Kafka(kafka)] = &manifest.triggers[..] else {
        panic!(
            "expected one cron and one kafka trigger: {:?}",
            manifest.triggers
        );
    };
    assert_eq!(cron.id, "cron-0");
    assert_eq!(&cron.outputs[..], ["vehicle_topic".to_owned()]);
    assert_eq!(kafka.group, "transform");
    assert_eq!(kafka.max_records, 500);
    assert_eq!(kafka.max_bytes, 16 << 20);
    assert_eq!(
        kafka.tables["vehicle_positions"].uri,
        dir.path().join("data/delta/vp").display().to_string()
    );
    assert_eq!(kafka.tables["vehicle_positions"].partition_by, ["date"]);
    assert_eq!(
        kafka.tables["vehicle_positions"].schema.columns[0].name,
        "date"
    );
    assert_eq!(kafka.table_settings, TableSettings::default());
    let tuned = VALID.replace(
        "dead_letter = { uri = \"data/delta/dead_letters\" }",
        "dead_letter = { uri = \"data/delta/dead_letters\" }\n\
         checkpoint_interval = 25\n\
         history_minutes = 90",
    );
    std::fs::write(&path, tuned).unwrap();
    let manifest = Manifest::load(&path, env.map(|(k, v)| (k.to_owned(), v.to_owned()))).unwrap();
    let Trigger::Kafka(kafka) = &manifest.triggers[1] else {
        panic!("the second trigger is the kafka one");
    };
    let tuned = TableSettings {
        checkpoint_interval: 25,
        history: std::time::Duration::from_secs(90 * 60),
    };
    assert_eq!(kafka.table_settings, tuned);
    std::fs::write(&path, VALID).unwrap();

    let without_key = Manifest::load(&path, Vec::new()).unwrap_err().to_string();
    assert!(without_key.contains("`component.fetch.variables.auth`: variable `api_key` is required but has no value: set `SPIN_VARIABLE_API_KEY`"), "{without_key}");
}

#[test]
fn ipv6_outbound_hosts_pass_the_check_the_runtime_enforces() {
    let text = r#"
spin_manifest_version = 2
[application]
name = "ipv6"
[component.fetch]
source = "fetch.wasm"
allowed_outbound_hosts = ["http://[::1]:8717", "https://[::1]"]
"#;
    let path = Path::new("spin.toml");
    let manifest = Manifest::parse(path, text, Vec::new()).unwrap();
    let component = &manifest.components["fetch"];
    assert_eq!(
        component.allowed_outbound_hosts,
        ["http://[::1]:8717", "https://[::1]"]
    );
    let bad = text.replace("https://[::1]", "https://[::1]/feed");
    let error = Manifest::parse(path, &bad, Vec::new())
        .unwrap_err()
        .to_string();
    assert!(error.contains("must name a host and no path"), "{error}");
    // The runtime takes what the manifest took, and refuses what it refused.
    let rt = crate::support::runtime();
    let load = |hosts: Vec<String>| {
        let settings = weir::runtime::ComponentSettings {
            allowed_outbound_hosts: hosts,
            ..Default::default()
        };
        rt.load_file(
            "fetch",
            &crate::support::guest("ok"),
            weir::World::Fetcher,
            settings,
        )
    };
    assert!(load(component.allowed_outbound_hosts.clone()).is_ok());
    let refused = load(vec!["http://[::1]/feed".to_owned()]).unwrap_err();
    assert!(
        refused.to_string().contains("must name a host and no path"),
        "{refused}"
    );
}
