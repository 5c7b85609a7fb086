# podkit/log-shipper: one static binary, nothing else. Built by `cargo xtask images`
# from a context holding only the binary (no pull: FROM scratch; legacy
# builder, so no syntax line and no BuildKit-only features).
FROM scratch
ARG VERSION=0.0.0-dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="log-shipper" \
      org.opencontainers.image.description="Sidecar: follows an app's log files in a shared volume and ships every line onward." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY log-shipper /usr/local/bin/log-shipper
USER 65532:65532
EXPOSE 9701
ENTRYPOINT ["/usr/local/bin/log-shipper"]
