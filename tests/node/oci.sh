# shellcheck shell=bash
# oci_archive ROOTFS NAME CONFIG_JSON OUT_TAR: packs the folder ROOTFS as the single layer of an
# OCI image named NAME (e.g. docker.io/library/pause:ktr) and writes an OCI layout archive to
# OUT_TAR, which `ctr images import` loads without any registry. CONFIG_JSON is the image's
# "config" object (User, Entrypoint, Env, WorkingDir), as JSON text.
#
# Every file in the layer is owned by 0:0 with a fixed time, so the same inputs give the same
# digests and containerd keeps one copy of an unchanged image.
oci_archive() {
  local rootfs=$1 name=$2 config=$3 out=$4 work layer layer_digest layer_size cfg cfg_digest
  local manifest manifest_digest
  work=$(mktemp -d "${out}.XXXXXX")
  mkdir -p "$work/blobs/sha256"
  layer="$work/layer.tar"
  tar --sort=name --numeric-owner --owner=0 --group=0 --mtime=@0 --format=posix \
    --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
    -C "$rootfs" -cf "$layer" .
  layer_digest=$(sha256sum "$layer" | cut -d' ' -f1)
  layer_size=$(stat -c %s "$layer")
  mv "$layer" "$work/blobs/sha256/$layer_digest"

  cfg=$(printf '{"architecture":"amd64","os":"linux","config":%s,"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
    "$config" "$layer_digest")
  cfg_digest=$(printf '%s' "$cfg" | sha256sum | cut -d' ' -f1)
  printf '%s' "$cfg" >"$work/blobs/sha256/$cfg_digest"

  manifest=$(printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%d}]}' \
    "$cfg_digest" "${#cfg}" "$layer_digest" "$layer_size")
  manifest_digest=$(printf '%s' "$manifest" | sha256sum | cut -d' ' -f1)
  printf '%s' "$manifest" >"$work/blobs/sha256/$manifest_digest"

  printf '{"imageLayoutVersion":"1.0.0"}' >"$work/oci-layout"
  printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%d,"platform":{"architecture":"amd64","os":"linux"},"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"}}]}' \
    "$manifest_digest" "${#manifest}" "$name" "${name##*:}" >"$work/index.json"
  tar --numeric-owner --owner=0 --group=0 -C "$work" -cf "$out.tmp" oci-layout index.json blobs
  mv -f "$out.tmp" "$out"
  rm -rf "$work"
}
