# Sourced by the service scripts: installs Debian packages, refreshing the package lists
# only when an install fails (a fresh machine may have none yet).
apt_install() {
  echo "$(basename "$0"): installing Debian $*" >&2
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -o DPkg::Lock::Timeout=600 --no-install-recommends "$@" >&2; then
    apt-get update -o DPkg::Lock::Timeout=600 >&2
    apt-get install -y -o DPkg::Lock::Timeout=600 --no-install-recommends "$@" >&2
  fi
}
