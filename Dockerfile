# The image deploy/kubernetes/cell.yaml runs: the release binary on
# distroless (glibc, CA certificates, no shell), as user 10001 like the
# cell's securityContext. TLS is rustls with its own roots; nothing else
# is needed at run time.
#
#   docker build -t ghcr.io/example/orderflow:0.1.0 .
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin orderflow \
 && install -m 0755 target/release/orderflow /orderflow

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /orderflow /usr/local/bin/orderflow
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/orderflow"]
CMD ["run", "--config", "/etc/orderflow/orderflow.toml"]
