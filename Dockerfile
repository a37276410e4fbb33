# estilo's web UI (`estilo serve`) on the CPU.
#
#   docker build -t estilo .
#   docker run --rm -p 127.0.0.1:7860:7860 estilo        # then open http://127.0.0.1:7860
#
# GPU variant (README, "Docker"): build with PyTorch's CUDA index and run with the NVIDIA
# Container Toolkit:
#   docker build --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu126 -t estilo:cuda .
#   docker run --rm --gpus all -p 127.0.0.1:7860:7860 estilo:cuda
#
# Built and run on a development machine on 2026-11-28 with podman 4.3 (`podman build
# --isolation chroot`), where Docker Hub and PyTorch's index cannot be reached: the base was a
# Debian 12 root file system with its Python 3.11 tagged as python:3.11-slim, and TORCH_INDEX a
# local index holding the same torch 2.13.0+cpu wheel. In the image `estilo info` found the
# weights (check matched), `estilo serve` answered HTTP 200 as the unprivileged user, and
# SIGTERM stopped it with exit status 0.
FROM python:3.11-slim

# PyTorch's CPU index: PyPI's Linux torch is the CUDA build, gigabytes larger. Installed first,
# alone, so pip keeps it when estilo's dependencies are resolved from PyPI.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
RUN pip install --no-cache-dir --index-url "$TORCH_INDEX" torch==2.13.0

WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY src ./src
RUN pip install --no-cache-dir '.[web]' && rm -rf /src

# The server runs without privileges; its uploads and results live in a private folder under
# /tmp and are deleted when it stops.
RUN useradd --create-home --uid 1000 estilo
USER estilo
WORKDIR /home/estilo
ENV GRADIO_ANALYTICS_ENABLED=False PYTHONUNBUFFERED=1

EXPOSE 7860
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:7860/', timeout=4)"]

# estilo is PID 1 (exec form, no shell): `docker stop` sends it SIGTERM, which it handles as
# Ctrl-C: the running job stops at its next iteration, each page is told, the files go, exit 0.
ENTRYPOINT ["estilo"]
# Inside the container 127.0.0.1 cannot be reached through a published port, so the server
# listens on all of the container's own interfaces; an explicit choice, hence --insecure (no
# password). Who reaches it is decided by `docker run -p`: publish on the host's 127.0.0.1 as
# above, or to expose it give a password instead:
#   docker run --rm -p 7860:7860 estilo serve --host 0.0.0.0 --auth USER:PASS
CMD ["serve", "--host", "0.0.0.0", "--port", "7860", "--insecure"]
