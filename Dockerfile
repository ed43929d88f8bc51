# Build and run Passerelle. The image holds the binary, the demo catalogue and
# the policies; data lives in PostgreSQL (DATABASE_URL) or under /app/data.
# Debian 13 (trixie), the current stable, for the build and the runtime.
FROM rust:1.95-trixie AS build
WORKDIR /src
# Dependencies first, in a layer of their own: it is rebuilt only when
# Cargo.toml or Cargo.lock change, not at every change of the sources.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src
COPY src src
COPY migrations migrations
# The placeholder's build is older than the real sources: touch them so
# cargo rebuilds the crate itself.
RUN touch src/main.rs src/lib.rs && cargo build --release --locked

FROM debian:trixie-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /app --no-create-home passerelle
WORKDIR /app
COPY --from=build /src/target/release/passerelle /usr/local/bin/passerelle
COPY catalog catalog
COPY policies policies
RUN mkdir -p data && chown passerelle data
USER passerelle
ENV PASSERELLE_SERVER__LISTEN=0.0.0.0:8080
EXPOSE 8080
# The binary asks its own /health/ready (no shell, no curl in the image).
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["passerelle", "health"]
ENTRYPOINT ["passerelle"]
CMD ["serve"]
