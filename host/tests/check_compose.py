"""Checks compose.yaml's structure (no Docker engine here to run it):
every service the stack needs, Kafka in KRaft mode, every bind-mounted file
present in the repo, the observability files mounted being the ones the
tests run, named volumes and secrets declared, secrets kept out of git,
ports published on loopback only. Prints one problem per line; exit 1 if any."""

import pathlib
import sys

import yaml

root = pathlib.Path(sys.argv[1])
compose = yaml.safe_load((root / "compose.yaml").read_text())
problems = []
services = compose.get("services", {})

for name in ["kafka", "weir", "prometheus", "alertmanager", "grafana", "node-exporter", "kafka-exporter"]:
    if name not in services:
        problems.append(f"service `{name}` missing")
if any("zookeeper" in name for name in services):
    problems.append("a ZooKeeper service: Kafka runs in KRaft mode")
kafka_env = services.get("kafka", {}).get("environment", {})
if "controller" not in str(kafka_env.get("KAFKA_PROCESS_ROLES", "")):
    problems.append("kafka is not a KRaft controller (KAFKA_PROCESS_ROLES)")

declared_volumes = set((compose.get("volumes") or {}).keys())
declared_secrets = compose.get("secrets") or {}
mounted = {}
for name, service in services.items():
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("./"):
            path = root / source
            if not path.exists():
                problems.append(f"{name}: mounts `{source}`, which is not in the repo")
            mounted[target] = source
        elif not source.startswith("/") and source not in declared_volumes:
            problems.append(f"{name}: volume `{source}` is not declared")
    for secret in service.get("secrets", []):
        if secret not in declared_secrets:
            problems.append(f"{name}: secret `{secret}` is not declared")
    for port in service.get("ports", []):
        if not str(port).startswith("127.0.0.1:"):
            problems.append(f"{name}: port `{port}` is published beyond loopback")
    if service.get("build") is not None and not (root / service["build"] / "Dockerfile").exists():
        problems.append(f"{name}: no Dockerfile to build")

for target, source in {
    "/etc/prometheus/prometheus.yml": "./observability/prometheus.yml",
    "/etc/prometheus/alert.rules.yml": "./observability/alert.rules.yml",
    "/etc/alertmanager/alertmanager.yml": "./observability/alertmanager.yml",
    "/etc/alertmanager/templates": "./observability/templates",
    "/etc/grafana/provisioning": "./observability/grafana/provisioning",
    "/var/lib/grafana/dashboards": "./observability/grafana/dashboards",
}.items():
    if mounted.get(target) != source:
        problems.append(f"`{target}` should be `{source}` (the file the observability tests run), is `{mounted.get(target)}`")

gitignore = (root / ".gitignore").read_text().split()
for name, secret in declared_secrets.items():
    file = secret.get("file", "")
    if not file.startswith("./secrets/"):
        problems.append(f"secret `{name}` is not under ./secrets/")
if "/secrets" not in gitignore:
    problems.append("secrets/ is not in .gitignore")

alertmanager = yaml.safe_load((root / "observability/alertmanager.yml").read_text())
if alertmanager["global"].get("slack_api_url_file") != "/run/secrets/slack_webhook_url":
    problems.append("alertmanager.yml does not read the Slack webhook from the compose secret")
if "slack_webhook_url" not in services.get("alertmanager", {}).get("secrets", []):
    problems.append("alertmanager does not get the slack_webhook_url secret")

prometheus = yaml.safe_load((root / "observability/prometheus.yml").read_text())
targets = {
    t for job in prometheus["scrape_configs"] for sc in job.get("static_configs", []) for t in sc["targets"]
}
for host, port in [("weir", "9464"), ("kafka-exporter", "9308"), ("node-exporter", "9100")]:
    if f"{host}:{port}" not in targets:
        problems.append(f"prometheus.yml does not scrape {host}:{port}")

weir_env = services.get("weir", {}).get("environment", {})
if "toei_odpt_train_vehicle" not in str(weir_env.get("SPIN_VARIABLE_VEHICLE_FEED_URL", "")):
    problems.append("the vehicle feed does not default to the public ODPT Toei feed")

# docker-compose 1.29 (Debian 12's) refuses a top-level `name:`; the
# project name comes from .env, which both Compose implementations read.
if "name" in compose:
    problems.append("a top-level `name:` key: docker-compose 1.29 refuses it (use .env)")
dotenv = (root / ".env").read_text().split()
if "COMPOSE_PROJECT_NAME=weir" not in dotenv:
    problems.append(".env does not name the compose project `weir`")

print("\n".join(problems))
sys.exit(1 if problems else 0)
