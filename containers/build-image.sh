#!/usr/bin/env bash
# Build the imgrec image with podman (make image): tools and base image first when missing,
# this machine's pip set-up lent to the build (containers/pip_mounts.py), then report the
# size, the torch build inside and the build time (also in build/image.json).
#   [TORCH_PINS="torch==... torchvision==..."] containers/build-image.sh IMAGE BASE [TORCH_INDEX]
# The image is labelled with the digest of its build inputs and the git commit
# (imgrec/mlops/image_inputs.py); when the image under IMAGE already carries this checkout's
# digest and build arguments nothing is built. One build at a time on a machine (a lock in
# /var/tmp: checkouts share podman's storage and the tag); afterwards the project's images that
# no tag uses any more are pruned, and so are the working containers of builds that were killed.
set -euo pipefail
image="$1"; base="$2"; torch_index="${3:-}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
podman="$here/podman"
python="${PYTHON:-python3}"
cpu_index="https://download.pytorch.org/whl/cpu"
project_label="org.opencontainers.image.source=imgrec"
label() { "$podman" image inspect --format "{{index .Labels \"$2\"}}" "$1" 2>/dev/null || true; }

"$here/setup-tools.sh"
exec 9>/var/tmp/imgrec-image.lock
flock -n 9 || { echo "waiting for another imgrec image build on this machine" >&2; flock 9; }

inputs=$(PYTHONPATH="$root" "$python" -m imgrec.mlops.image_inputs "$root")
revision=$(PYTHONPATH="$root" "$python" -m imgrec.mlops.image_inputs "$root" --revision)
pins="${TORCH_PINS:-default}"
if [ "$(label "$image" imgrec.inputs)" = "$inputs" ] && [ "$(label "$image" imgrec.base)" = "$base" ] \
   && [ "$(label "$image" imgrec.torch-pins)" = "$pins" ] \
   && { [ -z "$torch_index" ] || [ "$(label "$image" imgrec.torch-index)" = "$torch_index" ]; }; then
  echo "image $image is current: built from these inputs (${inputs:0:12}) at $(label "$image" org.opencontainers.image.revision)" >&2
  exit 0
fi

case "$base" in
  localhost/imgrec-base:*) "$here/base-image.sh" "$base" ;;
  *) "$podman" image exists "$base" || "$podman" pull "$base" ;;
esac

# The CPU wheels of torch live on download.pytorch.org. Where it cannot be reached, PyPI's
# torch of the same version is used: it runs on CPU the same way but bundles CUDA libraries
# (gigabytes); the image's label and the report say which one is inside.
if [ -z "$torch_index" ]; then
  if "$python" -c "import urllib.request as u; u.urlopen('$cpu_index/torch/', timeout=10)" 2>/dev/null; then
    torch_index="$cpu_index"
  else
    torch_index="https://pypi.org/simple"
    echo "note: $cpu_index unreachable; torch from $torch_index (CUDA libraries included)" >&2
  fi
fi

# Working containers of builds that were killed (a finished or failed build removes its
# own): each holds the layer it was writing, gigabytes for torch. Safe under the lock.
"$podman" ps --all --external --format '{{.ID}} {{.Names}}' | while read -r id name; do
  from="${name%-working-container}"
  [ "$from" != "$name" ] || continue
  if [ "$from" = "$(basename "${base%%:*}")" ] || [ "$(label "$from" org.opencontainers.image.source)" = imgrec ]; then
    "$podman" rm --force "$id" >/dev/null 2>&1 || true
  fi
done

mkdir -p "$root/build"
mapfile -t pip_options < <("$python" "$here/pip_mounts.py" "$root/build/pip-host")
echo "building $image at $revision (inputs ${inputs:0:12})" >&2
start=$(date +%s)
# Labels given here are LABEL steps after the Dockerfile's own, so a new digest rebuilds no
# layer (a LABEL with an ARG value would keep the cached, stale one in buildah 1.28).
"$podman" build --layers --force-rm --tag "$image" \
  --build-arg "BASE=$base" --build-arg "TORCH_INDEX=$torch_index" \
  ${TORCH_PINS:+--build-arg "TORCH_PINS=$TORCH_PINS"} \
  --label "$project_label" --label "imgrec.base=$base" --label "imgrec.torch-index=$torch_index" \
  --label "imgrec.torch-pins=$pins" --label "imgrec.inputs=$inputs" \
  --label "org.opencontainers.image.revision=$revision" \
  "${pip_options[@]}" --file "$root/Dockerfile" "$root"
seconds=$(( $(date +%s) - start ))
# The images this build replaced, with the layers only they used: gigabytes each time.
"$podman" image prune --force --filter "label=$project_label" >/dev/null
size=$("$podman" image inspect --format '{{.Size}}' "$image")
torch=$("$podman" run --rm "$image" python3 -c \
  "import torch; print(torch.__version__, 'cuda', torch.version.cuda or 'none')")
user=$("$podman" run --rm "$image" id -u)
printf '{"image": "%s", "base": "%s", "torch_index": "%s", "torch": "%s", "size_bytes": %s, "build_seconds": %s, "user": %s, "revision": "%s", "inputs": "%s"}\n' \
  "$image" "$base" "$torch_index" "$torch" "$size" "$seconds" "$user" "$revision" "$inputs" \
  | tee "$root/build/image.json"
echo "image $image: $(( size / 1000000 )) MB, torch $torch, built in $seconds s; $(df -h --output=avail /var/lib/containers | tail -n1 | tr -d ' ') left on its disk" >&2
