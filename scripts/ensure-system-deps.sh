#!/usr/bin/env bash
# Installs (Debian/Ubuntu, via apt-get) whichever of the system tools the
# fixture build and integration tests need are missing, and sets up what
# podman needs. Idempotent and quiet when everything is already present.
#
#   bash scripts/ensure-system-deps.sh
set -euo pipefail

packages=(skopeo umoci podman buildah docker-registry docker.io uidmap fuse-overlayfs zstd time libcap2-bin apache2-utils openssl libisal-dev runc busybox-static)

is_installed() { # <package>
  if command -v dpkg-query >/dev/null 2>&1; then
    [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == "install ok installed" ]]
    return
  fi
  # Not a dpkg system: fall back to looking for the main binary.
  case $1 in
    uidmap) command -v newuidmap ;;
    time) [[ -x /usr/bin/time ]] ;;
    libcap2-bin) command -v setcap ;;
    apache2-utils) command -v htpasswd ;; # htpasswd -B for the registry tests
    docker.io) command -v dockerd ;;
    *) command -v "$1" ;;
  esac >/dev/null 2>&1
}

missing=()
for p in "${packages[@]}"; do
  is_installed "$p" || missing+=("$p")
done

if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "ensure-system-deps: missing packages: ${missing[*]} -- run as root (or: sudo apt-get install -y --no-install-recommends ${missing[*]})" >&2
    exit 1
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-system-deps: missing packages: ${missing[*]} -- and apt-get is not available to install them" >&2
    exit 1
  fi
  echo "ensure-system-deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  # Do not let package postinst scripts start services (docker-registry) in
  # a container/CI sandbox; only install our guard if none exists.
  policy_rc=/usr/sbin/policy-rc.d
  own_policy_rc=0
  if [[ ! -e $policy_rc ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy_rc" && chmod 0755 "$policy_rc" && own_policy_rc=1
  fi
  trap 'if [[ $own_policy_rc == 1 ]]; then rm -f "$policy_rc"; fi' EXIT
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  still=()
  for p in "${missing[@]}"; do is_installed "$p" || still+=("$p"); done
  if ((${#still[@]})); then
    echo "ensure-system-deps: apt-get did not install: ${still[*]}" >&2
    exit 1
  fi
fi

# containers-image needs a signature policy; the package normally ships one.
if [[ ! -f /etc/containers/policy.json ]]; then
  if [[ $(id -u) -eq 0 ]]; then
    mkdir -p /etc/containers
    printf '{ "default": [ { "type": "insecureAcceptAnything" } ] }\n' >/etc/containers/policy.json
  else
    echo "ensure-system-deps: /etc/containers/policy.json is missing -- run as root to create it" >&2
    exit 1
  fi
fi

# Smoke-test the isolated podman wrapper used by the tests (this also writes
# its private storage/containers/registries config).
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
probe=$(mktemp -d "${TMPDIR:-/tmp}/occystrap-podman-probe.XXXXXX")
if ! out=$(OCCYSTRAP_PODMAN_STATE="$probe" bash "$repo/test/fixtures/podman.sh" info --format '{{.Store.GraphDriverName}}' 2>&1); then
  rm -rf "$probe"
  echo "ensure-system-deps: podman does not work with test/fixtures/podman.sh: $out" >&2
  exit 1
fi
rm -rf "$probe"
