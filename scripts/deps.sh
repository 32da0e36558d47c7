# Sourced by demo.sh and test.sh: make sure the build dependencies are
# installed. As root with apt-get, install what is missing; otherwise print
# the exact command and stop.
#   weft_ensure_deps demo   # compiler, cmake, pkg-config, liburcu
#   weft_ensure_deps test   # + C++ compiler and cmocka
weft_ensure_deps() {
    local want=$1
    local missing=()
    command -v cc >/dev/null 2>&1 || missing+=(gcc libc6-dev)
    command -v make >/dev/null 2>&1 || missing+=(make)
    command -v cmake >/dev/null 2>&1 || missing+=(cmake)
    if command -v pkg-config >/dev/null 2>&1; then
        pkg-config --exists liburcu-cds || missing+=(liburcu-dev)
        if [ "$want" = test ]; then
            pkg-config --exists cmocka || missing+=(libcmocka-dev)
        fi
    else
        missing+=(pkg-config liburcu-dev)
        [ "$want" = test ] && missing+=(libcmocka-dev)
    fi
    if [ "$want" = test ]; then
        command -v c++ >/dev/null 2>&1 || missing+=(g++)
    fi
    [ ${#missing[@]} -eq 0 ] && return 0

    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "weft: installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        echo "weft: missing build dependencies: ${missing[*]}" >&2
        echo "weft: install them with:  sudo apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
}

weft_jobs() {
    local n
    n=$(nproc 2>/dev/null || echo 2)
    [ "$n" -gt 2 ] && n=2 # CI machines have 2 cores; keep memory in check
    echo "$n"
}
