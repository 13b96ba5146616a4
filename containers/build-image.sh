#!/usr/bin/env bash
# Build the imgrec image with podman (make image): tools and base image first when missing,
# this machine's pip set-up lent to the build (containers/pip_mounts.py), then report the
# size, the torch build inside and the build time (also in build/image.json).
#   [TORCH_PINS="torch==... torchvision==..."] containers/build-image.sh IMAGE BASE [TORCH_INDEX]
set -euo pipefail
image="$1"; base="$2"; torch_index="${3:-}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
podman="$here/podman"
python="${PYTHON:-python3}"
cpu_index="https://download.pytorch.org/whl/cpu"

"$here/setup-tools.sh"
case "$base" in
  localhost/imgrec-base:*) "$here/base-image.sh" "$base" ;;
  *) "$podman" image exists "$base" || "$podman" pull "$base" ;;
esac

# The CPU wheels of torch live on download.pytorch.org. Where it cannot be reached, PyPI's
# torch of the same version is used: it runs on CPU the same way but bundles CUDA libraries
# (gigabytes); the image's label and the report say which one is inside.
if [ -z "$torch_index" ]; then
  if curl -s -f -o /dev/null --max-time 10 "$cpu_index/torch/"; then
    torch_index="$cpu_index"
  else
    torch_index="https://pypi.org/simple"
    echo "note: $cpu_index unreachable; torch from $torch_index (CUDA libraries included)" >&2
  fi
fi

mkdir -p "$root/build"
previous=$("$podman" image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)
mapfile -t pip_options < <("$python" "$here/pip_mounts.py" "$root/build/pip-host")
start=$(date +%s)
"$podman" build --layers --tag "$image" \
  --build-arg "BASE=$base" --build-arg "TORCH_INDEX=$torch_index" \
  ${TORCH_PINS:+--build-arg "TORCH_PINS=$TORCH_PINS"} \
  --label "org.opencontainers.image.source=imgrec" --label "imgrec.torch-index=$torch_index" \
  "${pip_options[@]}" --file "$root/Dockerfile" "$root"
seconds=$(( $(date +%s) - start ))
# The image this build replaced, with its own layers: gigabytes each time (kept when in use).
if [ -n "$previous" ] && [ "$previous" != "$("$podman" image inspect --format '{{.Id}}' "$image")" ]; then
  "$podman" rmi "$previous" >/dev/null 2>&1 || true
fi
size=$("$podman" image inspect --format '{{.Size}}' "$image")
torch=$("$podman" run --rm "$image" python3 -c \
  "import torch; print(torch.__version__, 'cuda', torch.version.cuda or 'none')")
user=$("$podman" run --rm "$image" id -u)
printf '{"image": "%s", "base": "%s", "torch_index": "%s", "torch": "%s", "size_bytes": %s, "build_seconds": %s, "user": %s}\n' \
  "$image" "$base" "$torch_index" "$torch" "$size" "$seconds" "$user" | tee "$root/build/image.json"
echo "image $image: $(( size / 1000000 )) MB, torch $torch, built in $seconds s" >&2
