# Multi-stage build: compile with the Rust toolchain, run on a slim Debian as a non-root user.
# Build:  docker build -t hearth .
# Run:    docker run -p 127.0.0.1:8080:8080 -v hearth-data:/var/lib/hearth hearth
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY migrations ./migrations
COPY src ./src
COPY examples ./examples
RUN cargo build --release --locked --bin hearth

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates tini \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/hearth --create-home hearth
COPY --from=build /src/target/release/hearth /usr/local/bin/hearth
COPY config/hearth.toml /etc/hearth/hearth.toml
USER hearth
WORKDIR /var/lib/hearth
VOLUME ["/var/lib/hearth"]
# Inside a container the API must listen on all interfaces, which requires a token:
# pass HEARTH_SERVER__API_TOKEN (or mount a config with api_token = { file = ... }).
ENV HEARTH_CONFIG=/etc/hearth/hearth.toml \
    HEARTH_SERVER__DATA_DIR=/var/lib/hearth \
    HEARTH_SERVER__BIND=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["/usr/bin/tini", "--", "hearth"]
CMD ["serve"]
