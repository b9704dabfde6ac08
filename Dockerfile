# eddy as a container: the binary and nothing else, running as a non-root user.
#
#   docker build -t eddy .
#   docker run --rm -v "$PWD/pipeline.yaml:/etc/eddy/pipeline.yaml:ro" eddy
#
# The build stage compiles the release binary; the runtime stage is distroless (glibc and CA
# certificates, no shell, no package manager) and runs as uid 65532. Processor components (.wasm)
# and the pipeline file are mounted, not baked in (deploy/kubernetes/ mounts them from a ConfigMap).
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p eddy --bin eddy

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/eddy /usr/local/bin/eddy
USER 65532:65532
# Compiled components are cached here (an emptyDir in Kubernetes); `off` would disable the cache.
ENV EDDY_CACHE_DIR=/tmp/eddy-cache
EXPOSE 9100
ENTRYPOINT ["/usr/local/bin/eddy"]
CMD ["run", "--config", "/etc/eddy/pipeline.yaml"]
