# The web app serving an exported model (docs/serving.md#container, docs/deploying.md):
#   make image                 build imgclf:latest with models/best copied in: the web app
#                              on onnxruntime, no TensorFlow (EXTRAS=serve)
#   make image-full            build imgclf:full with TensorFlow too (EXTRAS=pipeline), for
#                              serving model.keras itself
#   make serve-image           run it on 127.0.0.1:5000
# Builds with Docker and with Podman/Buildah alike. BASE_IMAGE is any Debian-based
# Python 3.10+ image; the default is the official slim one.
ARG BASE_IMAGE=docker.io/library/python:3.11-slim-bookworm
ARG EXTRAS=serve

# ---- 1. The virtual environment: the pinned dependencies, then the package ----------
FROM ${BASE_IMAGE} AS build
ARG EXTRAS
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
RUN python3 -m venv /opt/venv
WORKDIR /src
# Dependencies in their own layer, keyed on the two files that pin them: a change to
# the code (or the README the package metadata reads) re-runs only the last install.
COPY pyproject.toml constraints.txt ./
RUN mkdir -p imgclf webapp && touch README.md imgclf/__init__.py webapp/__init__.py \
    && /opt/venv/bin/pip install --constraint constraints.txt ".[${EXTRAS}]" \
    && /opt/venv/bin/pip uninstall --yes imgclf
COPY README.md ./
COPY imgclf ./imgclf
COPY webapp ./webapp
# (setuptools' build/ still holds the stub package of the layer above: start afresh.)
# Not needed to serve: TensorFlow's C++ headers (287 MB, for building custom ops, in the
# full image), the packages' own test suites, pip and setuptools.
RUN rm -rf build ./*.egg-info \
    && /opt/venv/bin/pip install --no-deps --constraint constraints.txt . \
    && site=$(echo /opt/venv/lib/python3*/site-packages) \
    && find "$site" -depth -type d -name tests -path "*/site-packages/*/tests" -exec rm -rf {} + \
    && rm -rf "$site/tensorflow/include" "$site/pip" "$site/setuptools" "$site/pkg_resources" \
        "$site/_distutils_hack" "$site/distutils-precedence.pth" /opt/venv/bin/pip*

# ---- 2. The runtime: the base, an init, the venv, the export, a user ----------------
FROM ${BASE_IMAGE}
# tini as PID 1 forwards SIGTERM to gunicorn, so `docker stop` drains in-flight requests.
RUN if ! command -v tini >/dev/null; then \
        apt-get update && apt-get install -y --no-install-recommends tini \
        && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin; \
    fi \
    && useradd --uid 10001 --create-home --shell /usr/sbin/nologin imgclf
COPY --from=build /opt/venv /opt/venv
COPY webapp/gunicorn.conf.py /etc/imgclf/gunicorn.conf.py
# The export served: copied in at build time, or its folder mounted over at run time
# (-v $PWD/models:/models:ro: the folder, since `dvc repro` swaps models/best by a rename).
ARG MODEL_DIR=models/best
COPY ${MODEL_DIR} /models/best
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    IMGCLF_MODEL_DIR=/models/best \
    IMGCLF_HOST=0.0.0.0 \
    IMGCLF_PORT=5000 \
    WEB_CONCURRENCY=2 \
    TF_CPP_MIN_LOG_LEVEL=2
USER imgclf
EXPOSE 5000
# Healthy while a worker serves a model: /ready answers 503 while one has none (a
# broken or missing export), so an orchestrator restarts or reports it.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request as u; u.urlopen(f\"http://127.0.0.1:{os.environ['IMGCLF_PORT']}/ready\", timeout=4)"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["tini", "--"]
CMD ["gunicorn", "--config", "/etc/imgclf/gunicorn.conf.py", "webapp:create_app()"]
