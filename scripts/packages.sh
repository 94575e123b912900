# Debian packages the scripts need, installed when missing. Sourced.

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_updated=
need_package() {
    if ! dpkg -s "$1" >/dev/null 2>&1; then
        if [ -z "$apt_updated" ]; then as_root apt-get update -qq; apt_updated=1; fi
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1" >/dev/null
    fi
}

# What building the gateway needs beyond Rust and a C compiler: the Kafka
# client builds its bundled librdkafka with these.
need_build_packages() {
    need_package cmake
    need_package libcurl4-openssl-dev
}
