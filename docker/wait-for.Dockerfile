# podkit/wait-for: one static binary, nothing else. Built by `cargo xtask images`
# from a context holding only the binary (no pull: FROM scratch; legacy
# builder, so no syntax line and no BuildKit-only features).
FROM scratch
ARG VERSION=0.0.0-dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="wait-for" \
      org.opencontainers.image.description="Init container: blocks until dependencies are really ready, then exits or execs the app." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY wait-for /usr/local/bin/wait-for
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/wait-for"]
