# Prometheus, Alertmanager and Python 3 from Debian's packages, for the live
# compose test (registry images cannot be pulled here). FROM the bookworm
# base the test makes with debootstrap when no debian:bookworm-slim exists.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends prometheus prometheus-alertmanager python3 \
 && rm -rf /var/lib/apt/lists/*
