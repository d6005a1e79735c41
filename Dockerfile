# weir: the host and the pipeline's function components in one slim image.
# Build: docker build -t weir .   (compose.yaml does this for you)

# --- build stage: the same dependency script CI runs, then weir build ---
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY rust-toolchain.toml ./
COPY .ci/install-build-deps .ci/install-build-deps
RUN .ci/install-build-deps
COPY . .
RUN cargo build --release --locked --bin weir \
 && ./target/release/weir build

# --- runtime stage: the binary, the manifest, the components, the table schemas ---
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 libsasl2-2 libcurl4 zlib1g curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin weir \
 && mkdir -p /app/data \
 && chown weir /app/data
WORKDIR /app
COPY --from=build /src/target/release/weir /usr/local/bin/weir
COPY --from=build /src/spin.toml /app/spin.toml
COPY --from=build /src/target/wasm32-wasip2/release/gtfs_fetch.wasm /src/target/wasm32-wasip2/release/vehicle_transform.wasm /src/target/wasm32-wasip2/release/trip_update_transform.wasm /src/target/wasm32-wasip2/release/alert_transform.wasm /app/target/wasm32-wasip2/release/
COPY --from=build /src/functions/vehicle-transform/tables /app/functions/vehicle-transform/tables
COPY --from=build /src/functions/trip-update-transform/tables /app/functions/trip-update-transform/tables
COPY --from=build /src/functions/alert-transform/tables /app/functions/alert-transform/tables
USER weir
ENV WEIR_LISTEN=0.0.0.0:9464 \
    WEIR_DATA_DIR=/app/data
VOLUME ["/app/data"]
EXPOSE 9464
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD curl -fsS http://127.0.0.1:9464/healthz || exit 1
ENTRYPOINT ["weir"]
CMD ["up"]
