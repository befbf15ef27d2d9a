#!/bin/bash
# Fetch torchvision's official ImageNet resnet18 checkpoint, check its hash and convert it to
# seer's native weight file.  The checkpoint is only hashed and handed to `seer convert`, which
# parses it as data: nothing from the download is ever executed or unpickled by Python.

set -euo pipefail

readonly URL=https://download.pytorch.org/models/resnet18-f37072fd.pth
readonly NAME=${URL##*/}
readonly HASH_PREFIX=f37072fd   # what torch.hub's check_hash verifies: the prefix in the name

prog=${0##*/}
script_dir=$(cd "$(dirname "$0")" && pwd)

usage() {
    cat <<EOF
Usage: $prog [--source URL|FILE] [--out PATH] [--seer PATH] [--force] [--sha256-prefix HEX]

Download $URL (45 MB),
check that its SHA-256 starts with $HASH_PREFIX, and write it with \`seer convert\` to
seer's default model path.

  --source URL|FILE   a mirror's URL or an already downloaded checkpoint
                      (default: \$SEER_WEIGHTS_SOURCE, else a copy in torch.hub's cache
                      if there is one, else the URL above)
  --out PATH          where to write the converted model (default: \$SEER_MODEL, else
                      \${XDG_DATA_HOME:-\$HOME/.local/share}/seer/resnet18.seer)
  --seer PATH         the seer binary (default: src/seer or build/src/seer of this source tree if built,
                      else seer beside this script, else seer on PATH)
  --force             download and convert again even if the model is up to date
  --sha256-prefix HEX expect this SHA-256 prefix (8 to 64 hex digits) instead of
                      $HASH_PREFIX, to convert another resnet18 checkpoint whose hash you
                      know; a mismatch is refused all the same
  -h, --help          show this help

Downloads are kept in \${XDG_CACHE_HOME:-\$HOME/.cache}/seer/ and reused.
EOF
}

die() {
    printf '%s: %s\n' "$prog" "$*" >&2
    exit 1
}

# die_offline MESSAGE: say what went wrong, then what a user without network access can do.
die_offline() {
    printf '%s: %s\n' "$prog" "$*" >&2
    cat >&2 <<EOF
$prog: to install the weights without network access on this machine:
  1. on a machine with internet access, download
       $URL
     (e.g. curl -fLO $URL)
  2. copy resnet18-f37072fd.pth to this machine
  3. rerun: $0 --source /path/to/resnet18-f37072fd.pth
EOF
    exit 1
}

source=${SEER_WEIGHTS_SOURCE:-}
out=${SEER_MODEL:-${XDG_DATA_HOME:-$HOME/.local/share}/seer/resnet18.seer}
seer=
force=0
prefix=$HASH_PREFIX

need_arg() {
    [[ $# -ge 2 && -n $2 ]] || { usage >&2; die "option $1 needs an argument"; }
}

while [[ $# -gt 0 ]]; do
    case $1 in
        --source) need_arg "$@"; source=$2; shift 2 ;;
        --source=*) source=${1#*=}; shift ;;
        --out) need_arg "$@"; out=$2; shift 2 ;;
        --out=*) out=${1#*=}; shift ;;
        --seer) need_arg "$@"; seer=$2; shift 2 ;;
        --seer=*) seer=${1#*=}; shift ;;
        --sha256-prefix) need_arg "$@"; prefix=$2; shift 2 ;;
        --sha256-prefix=*) prefix=${1#*=}; shift ;;
        --force) force=1; shift ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done

prefix=${prefix,,}
[[ $prefix =~ ^[0-9a-f]{8,64}$ ]] || die "--sha256-prefix wants 8 to 64 hex digits, not '$prefix'"

if [[ -z $seer ]]; then
    if [[ -x $script_dir/../src/seer ]]; then
        seer=$script_dir/../src/seer
    elif [[ -x $script_dir/../build/src/seer ]]; then  # the README's build directory
        seer=$script_dir/../build/src/seer
    elif [[ -x $script_dir/seer ]]; then  # both installed in the same bin directory
        seer=$script_dir/seer
    elif command -v seer >/dev/null; then
        seer=$(command -v seer)
    else
        die "no seer binary: build it (make) or pass --seer PATH"
    fi
fi
[[ -x $seer ]] || die "$seer is not an executable seer binary"

# No source given: reuse a checkpoint that torch.hub already downloaded, else the official URL.
if [[ -z $source ]]; then
    hub=${TORCH_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/torch}/hub/checkpoints/$NAME
    if [[ -f $hub ]]; then
        source=$hub
    else
        source=$URL
    fi
fi

is_url=0
[[ $source =~ ^[A-Za-z][A-Za-z0-9+.-]*:// ]] && is_url=1

if [[ $force -eq 0 && -s $out ]]; then
    # A local source newer than the model means the user wants it converted again.
    if [[ $is_url -eq 1 || ! $source -nt $out ]]; then
        echo "$prog: $out is up to date (use --force to fetch and convert again)"
        exit 0
    fi
fi

cache_dir=${XDG_CACHE_HOME:-$HOME/.cache}/seer
tmp_files=()
cleanup() {
    [[ ${#tmp_files[@]} -eq 0 ]] || rm -f -- "${tmp_files[@]}"
}
trap cleanup EXIT

# check_hash FILE: succeed if FILE's SHA-256 starts with $prefix, else say why and fail.
check_hash() {
    local sum
    sum=$(sha256sum -- "$1") || die "cannot read $1"
    sum=${sum%% *}
    if [[ $sum != "$prefix"* ]]; then
        echo "$prog: SHA-256 of $1 is $sum, expected it to start with $prefix;" \
            "refusing it (corrupt, truncated or not the official $NAME)" >&2
        return 1
    fi
}

if [[ $is_url -eq 1 ]]; then
    command -v curl >/dev/null || die_offline "curl is not installed (apt-get install curl)"
    mkdir -p -- "$cache_dir" || die "cannot create $cache_dir"
    pth=$cache_dir/${source##*/}
    [[ $pth == "$cache_dir/" || ${source##*/} == *[!A-Za-z0-9._-]* ]] && pth=$cache_dir/$NAME
    if [[ $force -eq 0 && -f $pth ]] && check_hash "$pth" 2>/dev/null; then
        echo "$prog: using $pth downloaded before"
    else
        part=$pth.part.$$
        tmp_files+=("$part")
        echo "$prog: downloading $source"
        progress=--silent
        [[ -t 2 ]] && progress=--progress-bar
        curl --fail --location --proto '=https,http,ftp,file' --retry 2 --connect-timeout 20 \
            --show-error "$progress" -o "$part" -- "$source" ||
            die_offline "could not download $source (curl's message is above)"
        check_hash "$part" || die_offline "the download from $source is not the expected checkpoint"
        mv -f -- "$part" "$pth"
    fi
else
    pth=$source
    [[ -f $pth ]] || die_offline "$pth: no such file"
    if ! check_hash "$pth"; then
        [[ $prefix == "$HASH_PREFIX" ]] && die_offline "not converting $pth"
        die "not converting $pth"
    fi
fi

out_dir=$(dirname -- "$out")
mkdir -p -- "$out_dir" || die "cannot create $out_dir"
tmp_out=$out.tmp.$$
tmp_files+=("$tmp_out")
"$seer" convert "$pth" "$tmp_out" || die "$seer convert $pth failed"
mv -f -- "$tmp_out" "$out"
echo "$prog: wrote $out"
