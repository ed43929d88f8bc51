# Build and run Passerelle. The image holds the binary, the demo catalogue and
# the policies; data lives in PostgreSQL (DATABASE_URL) or under /app/data.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY migrations migrations
RUN cargo build --release --locked

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /app passerelle
WORKDIR /app
COPY --from=build /src/target/release/passerelle /usr/local/bin/passerelle
COPY catalog catalog
COPY policies policies
RUN mkdir -p data && chown passerelle data
USER passerelle
ENV PASSERELLE_SERVER__LISTEN=0.0.0.0:8080
EXPOSE 8080
HEALTHCHECK CMD ["/bin/sh", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080"]
ENTRYPOINT ["passerelle"]
CMD ["serve"]
