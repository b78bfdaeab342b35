# The rdqc worker image. Build (the image is built by your CI; see README, "Container image"):
#   docker build -t REGISTRY/rdqc-worker:VERSION --build-arg VERSION=VERSION \
#     --build-arg REVISION=$(git rev-parse HEAD) \
#     --build-arg CREATED=$(date -u +%Y-%m-%dT%H:%M:%SZ) --build-arg SOURCE=REPOSITORY_URL .
#
# A slim Python base, not a CUDA one: on x86-64, torch from the package index is the CUDA build
# and brings the CUDA runtime, cuDNN, cuBLAS and NCCL as nvidia-* wheels inside the venv. The one
# piece it needs from outside is the driver (libcuda), which the NVIDIA container runtime mounts
# from the GPU node into the container. Both stages use this one base, so the venv's links to
# its interpreter (in /usr/local/bin) hold in the final stage.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

WORKDIR /src
# Only what `pip install .` reads: the metadata, the readme it names, and the two packages.
COPY deploy/image/install-venv.sh deploy/image/install-venv.sh
COPY pyproject.toml README.md ./
COPY rdcore rdcore
COPY worker worker
# Every dependency ships as a binary wheel, so no compiler is installed in either stage.
RUN bash deploy/image/install-venv.sh /opt/rdqc/venv .

FROM ${PYTHON_IMAGE} AS runtime

ARG VERSION=unknown
ARG REVISION=unknown
ARG CREATED=unknown
ARG SOURCE=unknown
LABEL org.opencontainers.image.title="rdqc-worker" \
      org.opencontainers.image.description="rdqc streaming visual quality-control worker" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE}"

# The root filesystem is read-only in the chart; it mounts emptyDirs at /var/cache/rdqc (the
# model cache) and /tmp, so everything that writes at run time is pointed at one of them.
ENV PATH=/opt/rdqc/venv/bin:${PATH} \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    XDG_CACHE_HOME=/var/cache/rdqc \
    TORCH_HOME=/var/cache/rdqc/torch \
    MPLCONFIGDIR=/tmp/matplotlib \
    RDQC_MODELS__CACHE_DIR=/var/cache/rdqc/models

COPY --from=builder /opt/rdqc/venv /opt/rdqc/venv
# Owned by the runtime user so the image also runs without the chart's volumes.
RUN install -d -o 10001 -g 10001 /var/cache/rdqc

# Numeric, so the kubelet can check runAsNonRoot (helm/rdqc/values.yaml, podSecurityContext).
USER 10001:10001
# Relative paths (the local backends' defaults, an env file) resolve on the writable scratch.
WORKDIR /tmp

EXPOSE 9108 8080
ENTRYPOINT ["rdqc"]
CMD ["worker"]
