# podkit/tail-rewrite: one static binary, nothing else. Built by `cargo xtask images`
# from a context holding only the binary (no pull: FROM scratch; legacy
# builder, so no syntax line and no BuildKit-only features).
FROM scratch
ARG VERSION=0.0.0-dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="tail-rewrite" \
      org.opencontainers.image.description="Adapter: follows a log across rotation and rewrites each line (replaces tail -f | sed)." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY tail-rewrite /usr/local/bin/tail-rewrite
USER 65532:65532
EXPOSE 9702
ENTRYPOINT ["/usr/local/bin/tail-rewrite"]
