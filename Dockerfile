# Build switchyard, the bundled plugins, and the mobility platform's mock CRM
# and event producer, then run them on a slim image (one image; compose
# picks the program per service).
FROM rust:1.95-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends cmake libcurl4-openssl-dev zlib1g-dev libssl-dev pkg-config \
    && rustup target add wasm32-unknown-unknown
WORKDIR /src
COPY . .
RUN cargo build --release -p switchyard -p mock-crm -p mobility-producer \
    && scripts/build-plugins.sh target/release/switchyard

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates libssl3 libcurl4 && rm -rf /var/lib/apt/lists/*
# A user without privileges (the uid the Kubernetes manifests run as). It
# owns what switchyard writes: the compile cache, the plugins directory
# (uploads) and the routes file (admin API route changes).
RUN useradd --system --uid 65532 --user-group --home-dir /srv/switchyard --shell /usr/sbin/nologin switchyard \
    && mkdir -p /var/cache/switchyard /srv/switchyard \
    && chown switchyard:switchyard /var/cache/switchyard /srv/switchyard
COPY --from=build /src/target/release/switchyard /src/target/release/mock-crm /src/target/release/mobility-producer /usr/local/bin/
COPY --from=build --chown=65532:65532 /src/target/plugins /srv/switchyard/target/plugins
COPY --chown=65532:65532 switchyard.toml /srv/switchyard/switchyard.toml
WORKDIR /srv/switchyard
ENV SWITCHYARD_CACHE_DIR=/var/cache/switchyard
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["switchyard"]
CMD ["run", "--config", "switchyard.toml"]
