#!/usr/bin/env bash
# teleport-update installer, served by a Teleport proxy at /scripts/install.sh.
#
#   curl -fsSL https://PROXY/scripts/install.sh | sudo bash
#   curl -fsSL https://PROXY/scripts/install.sh | sudo bash -s -- --token TOKEN
#   curl -fsSL https://PROXY/scripts/install.sh | sudo TELEPORT_UPDATE_TOKEN=TOKEN bash
#
# It downloads the teleport-update release for this host from the CDN,
# checks its SHA-256 and its signature against the public key embedded below,
# and runs `teleport-update install`, which installs the agent version the
# proxy asks for. Extra arguments are passed to `teleport-update install`,
# except --token: its value is handed over in a root-only file
# (--token-file), never on teleport-update's command line.
# Re-running it is safe.
#
# Environment:
#   TELEPORT_UPDATE_ROOT                     install under this directory instead of /
#                                            (tests and demos; no root needed)
#   TELEPORT_UPDATE_INSECURE_SKIP_SIGNATURE  "yes" installs without a signature check
#                                            when openssl is missing. INSECURE.
#   TMPDIR                                   where to download and unpack (default /tmp).
#                                            As root, only a root-only directory is used:
#                                            it and every directory above it owned by
#                                            root and writable by no one else (a
#                                            root-owned sticky directory such as /tmp
#                                            counts). Any other TMPDIR is ignored, with a
#                                            warning, and /tmp is used: whoever can write
#                                            there could swap the verified teleport-update
#                                            for their own program before root runs it.
#
# The whole body is inside main, called on the last line, so a truncated
# download executes nothing.
set -euo pipefail

# Filled in by the proxy. Each value sits inside single quotes.
readonly PROXY_ADDR='{{.ProxyAddr}}'
readonly GROUP='{{.Group}}'
readonly VERSION='{{.Version}}'
readonly FILLED_BASE_URL='{{.BaseURL}}'
readonly PUBLIC_KEY='{{.PublicKey}}'

readonly DEFAULT_BASE_URL='https://cdn.teleport.dev'
# Size caps for what the CDN sends (bytes).
readonly MAX_CHECKSUM_BYTES=4096
readonly MAX_SIGNATURE_BYTES=4096
readonly MAX_TARBALL_BYTES=1073741824

readonly LOG_PREFIX='teleport-update install.sh:'
# Where root works when TMPDIR is not root-only.
readonly ROOT_FALLBACK_TMP='/tmp'
WORK_DIR=''

say() {
	printf '%s %s\n' "$LOG_PREFIX" "$*" >&2
}

die() {
	printf '%s ERROR: %s\n' "$LOG_PREFIX" "$*" >&2
	exit 1
}

cleanup() {
	if [[ -n $WORK_DIR ]]; then
		rm -rf -- "$WORK_DIR"
	fi
}

need() {
	local tool
	for tool in "$@"; do
		command -v "$tool" >/dev/null 2>&1 || die "required tool '$tool' is not installed."
	done
}

# check_inputs refuses values the proxy should never have filled in.
check_inputs() {
	local semver='^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$'
	local hostport='^[]A-Za-z0-9.:[-]+$'
	local group_re='^[A-Za-z0-9._-]*$'
	[[ -n $PROXY_ADDR ]] || die "the proxy address is empty; download this script from your proxy's /scripts/install.sh."
	[[ $PROXY_ADDR =~ $hostport ]] || die "the proxy address '$PROXY_ADDR' is not a host[:port]."
	[[ $GROUP =~ $group_re ]] || die "the update group '$GROUP' contains characters other than letters, digits, '.', '_' and '-'."
	[[ $VERSION =~ $semver ]] || die "the teleport-update version '$VERSION' is not a semantic version."
	[[ $PUBLIC_KEY == *'-----BEGIN PUBLIC KEY-----'* ]] || die "the embedded public key is not a PEM public key."
}

# base_url prints the CDN base: the one the proxy filled in, or the default.
base_url() {
	local base="$FILLED_BASE_URL"
	local url_re='^https://[]A-Za-z0-9.:[-]+(/[A-Za-z0-9._~%/+-]*)?$'
	if [[ -z $base ]]; then
		base="$DEFAULT_BASE_URL"
	fi
	# Strip one trailing slash only after the empty check, so "/" is refused
	# instead of silently meaning the default.
	base="${base%/}"
	[[ $base == https://* ]] || die "the CDN base URL '$base' is not https://."
	[[ $base =~ $url_re ]] || die "the CDN base URL '$base' is not a plain https://host[:port][/path] URL."
	printf '%s\n' "$base"
}

detect_arch() {
	local os machine
	os="$(uname -s)"
	[[ $os == Linux ]] || die "unsupported operating system '$os': teleport-update runs on Linux only."
	machine="$(uname -m)"
	case "$machine" in
	x86_64 | amd64) echo amd64 ;;
	aarch64 | arm64) echo arm64 ;;
	*) die "unsupported CPU architecture '$machine': teleport-update is built for x86_64 (amd64) and aarch64 (arm64)." ;;
	esac
}

# fetch URL DEST MAX_BYTES downloads over HTTPS only, with TLS 1.2+, giving up
# on transfers slower than 1 KiB/s for 10 s. It stops reading one byte past
# MAX_BYTES even when the server sends no length.
fetch() {
	local url="$1" dest="$2" max="$3"
	local rc=0 size
	curl --proto '=https' --proto-redir '=https' --tlsv1.2 -fsSL \
		--connect-timeout 10 --speed-limit 1024 --speed-time 10 \
		--max-filesize "$max" -o - -- "$url" 2>"$dest.err" |
		head -c "$((max + 1))" >"$dest" || rc=$?
	size="$(wc -c <"$dest")"
	if ((size > max)); then
		die "download of $url stopped: it is larger than the $max bytes allowed."
	fi
	if ((rc != 0)); then
		die "download of $url failed: $(head -c 500 "$dest.err") (curl exit $rc)."
	fi
}

# sha256_of FILE prints the lowercase hex SHA-256 of FILE.
sha256_of() {
	local sum
	if command -v sha256sum >/dev/null 2>&1; then
		sum="$(sha256sum -- "$1")"
	elif command -v shasum >/dev/null 2>&1; then
		sum="$(shasum -a 256 -- "$1")"
	else
		die "neither sha256sum nor shasum is installed."
	fi
	printf '%s\n' "${sum%% *}"
}

# verify_checksum SUMFILE TARBALL NAME: SUMFILE must be exactly one sha256sum
# line naming NAME ("<64 lowercase hex>  NAME\n", nothing else), and
# TARBALL's SHA-256 must match it.
verify_checksum() {
	local sumfile="$1" tarball="$2" name="$3"
	local lines size line want got
	lines="$(wc -l <"$sumfile")"
	((lines == 1)) || die "checksum file $name.sha256 must hold exactly one line; it holds $lines."
	IFS= read -r line <"$sumfile" || die "checksum file $name.sha256 is unreadable."
	[[ $line =~ ^([0-9a-f]{64})\ \ (.+)$ ]] || die "checksum file $name.sha256 is not in sha256sum format."
	want="${BASH_REMATCH[1]}"
	[[ ${BASH_REMATCH[2]} == "$name" ]] ||
		die "checksum file $name.sha256 names '${BASH_REMATCH[2]}', not '$name'."
	# The line must be the whole file: no NUL bytes, nothing after it.
	size="$(wc -c <"$sumfile")"
	((size == ${#line} + 1)) || die "checksum file $name.sha256 holds more than its checksum line."
	got="$(sha256_of "$tarball")"
	[[ $got == "$want" ]] ||
		die "SHA-256 mismatch for $name: the CDN sent a file hashing to $got, the checksum file says $want. Refusing to install."
	say "SHA-256 of $name matches its checksum file."
}

# verify_signature SUMFILE SIGFILE KEYFILE NAME: SIGFILE is a base64 DER ECDSA
# signature over the exact bytes of SUMFILE by KEYFILE.
verify_signature() {
	local sumfile="$1" sigfile="$2" keyfile="$3" name="$4"
	local der="$WORK_DIR/signature.der"
	base64 -d <"$sigfile" >"$der" 2>/dev/null ||
		die "signature file $name.sha256.sig is not valid base64. Refusing to install."
	if ! openssl dgst -sha256 -verify "$keyfile" -signature "$der" "$sumfile" >/dev/null 2>&1; then
		die "signature check FAILED for $name.sha256: it was not signed by the release key this proxy trusts. Refusing to install."
	fi
	say "Signature on $name.sha256 verified with the embedded release key."
}

# unsafe_path_reason DIR prints why root must not work in DIR, or nothing
# when it may: every directory on DIR's real path must be owned by root and
# writable by no one else. A root-owned sticky directory (like /tmp) may be
# writable by others, since the sticky bit stops them from renaming or
# removing what root creates in it. The group bits stand for ACL entries
# too, so a directory an ACL lets another user write is refused as well.
unsafe_path_reason() {
	local dir="$1" real owner_mode uid mode
	if ! real="$(cd -P -- "$dir" 2>/dev/null && pwd -P)"; then
		printf '%s\n' "it is not a directory root can enter"
		return
	fi
	while :; do
		if ! owner_mode="$(stat -c '%u %a' -- "$real")"; then
			printf '%s\n' "cannot read the owner and mode of $real"
			return
		fi
		uid="${owner_mode% *}"
		mode="${owner_mode#* }"
		if [[ $uid != 0 ]]; then
			printf '%s\n' "$real is owned by uid $uid, not root"
			return
		fi
		if (((8#$mode & 8#022) != 0 && (8#$mode & 8#1000) == 0)); then
			printf '%s\n' "$real is writable by users other than root (mode $mode)"
			return
		fi
		[[ $real != / ]] || return 0
		real="${real%/*}"
		real="${real:-/}"
	done
}

# work_base prints the real path of the directory to create the work
# directory in: TMPDIR (default /tmp), except that as root a TMPDIR that is
# not root-only is ignored with a warning.
work_base() {
	local base="${TMPDIR:-$ROOT_FALLBACK_TMP}" why
	if ((EUID != 0)); then
		printf '%s\n' "$base"
		return
	fi
	why="$(unsafe_path_reason "$base")"
	if [[ -n $why && $base != "$ROOT_FALLBACK_TMP" ]]; then
		say "WARNING: ignoring TMPDIR=$base: $why. Another user could swap what this script verified before root runs it; working in $ROOT_FALLBACK_TMP instead."
		base="$ROOT_FALLBACK_TMP"
		why="$(unsafe_path_reason "$base")"
	fi
	[[ -z $why ]] ||
		die "cannot work in $base as root: $why. Set TMPDIR to a directory owned by root and writable by no one else, like every directory above it."
	(cd -P -- "$base" && pwd -P)
}

# check_work_dir DIR refuses a work directory that is not root's alone.
check_work_dir() {
	local owner_mode
	owner_mode="$(stat -c '%u %a' -- "$1")"
	[[ $owner_mode == '0 700' ]] ||
		die "the work directory $1 is not owned by root with mode 700 (uid and mode: $owner_mode)."
}

# write_token FILE TOKEN writes TOKEN to FILE, readable by its owner only.
write_token() {
	(
		umask 077
		printf '%s\n' "$2" >"$1"
	)
}

# redact prints its arguments with the values of --token hidden.
redact() {
	local out=() hide=no arg
	for arg in "$@"; do
		if [[ $hide == yes ]]; then
			out+=('<hidden>')
			hide=no
			continue
		fi
		case "$arg" in
		--token) hide=yes ;;
		--token=*) arg='--token=<hidden>' ;;
		esac
		out+=("$arg")
	done
	printf '%s\n' "${out[*]}"
}

main() {
	need uname curl tar mktemp wc head base64 stat
	check_inputs

	local base arch name
	base="$(base_url)"
	arch="$(detect_arch)"
	name="teleport-update-v${VERSION}-linux-${arch}-bin.tar.gz"

	local have_openssl=yes
	if ! command -v openssl >/dev/null 2>&1; then
		have_openssl=no
		if [[ ${TELEPORT_UPDATE_INSECURE_SKIP_SIGNATURE:-} != yes ]]; then
			die "openssl is not installed, so the signature on $name cannot be checked. Install openssl and re-run, or set TELEPORT_UPDATE_INSECURE_SKIP_SIGNATURE=yes to install WITHOUT a signature check (insecure)."
		fi
	fi

	if [[ -z ${TELEPORT_UPDATE_ROOT:-} && $EUID -ne 0 ]]; then
		die "teleport-update installs system-wide and must run as root; pipe this script to 'sudo bash'."
	fi

	local base_dir
	base_dir="$(work_base)"
	WORK_DIR="$(mktemp -d "$base_dir/teleport-update-install.XXXXXXXX")"
	trap cleanup EXIT
	if ((EUID == 0)); then
		check_work_dir "$WORK_DIR"
	fi

	say "Downloading teleport-update $VERSION for linux/$arch from $base."
	# The small signed checksum first: a bad signature stops the script
	# before the tarball is downloaded at all.
	fetch "$base/$name.sha256" "$WORK_DIR/$name.sha256" "$MAX_CHECKSUM_BYTES"
	if [[ $have_openssl == yes ]]; then
		fetch "$base/$name.sha256.sig" "$WORK_DIR/$name.sha256.sig" "$MAX_SIGNATURE_BYTES"
		printf '%s\n' "$PUBLIC_KEY" >"$WORK_DIR/release-key.pem"
		verify_signature "$WORK_DIR/$name.sha256" "$WORK_DIR/$name.sha256.sig" "$WORK_DIR/release-key.pem" "$name"
	else
		say "WARNING: openssl is not installed and TELEPORT_UPDATE_INSECURE_SKIP_SIGNATURE=yes is set."
		say "WARNING: the signature on $name is NOT being checked. Anyone who controls the CDN or the network path can run code on this host as root."
	fi
	fetch "$base/$name" "$WORK_DIR/$name" "$MAX_TARBALL_BYTES"
	verify_checksum "$WORK_DIR/$name.sha256" "$WORK_DIR/$name" "$name"

	mkdir -p -- "$WORK_DIR/pkg"
	tar -xzf "$WORK_DIR/$name" -C "$WORK_DIR/pkg" --no-same-owner ||
		die "unpacking $name failed."
	local updater="$WORK_DIR/pkg/bin/teleport-update"
	[[ -f $updater && -x $updater ]] || die "$name has no executable bin/teleport-update."

	local args=(install --proxy "$PROXY_ADDR")
	if [[ -n $GROUP ]]; then
		args+=(--group "$GROUP")
	fi
	if [[ -n ${TELEPORT_UPDATE_ROOT:-} ]]; then
		args+=(--root "$TELEPORT_UPDATE_ROOT")
	fi
	if [[ $base != "$DEFAULT_BASE_URL" ]]; then
		args+=(--base-url "$base")
	fi
	# The enrollment token never reaches teleport-update's command line,
	# which every local user can read: it goes through a file only root can
	# read, in the root-only work directory, removed right after.
	local token_file="$WORK_DIR/token"
	while (($# > 0)); do
		case "$1" in
		--token)
			(($# >= 2)) || die "--token needs a value."
			write_token "$token_file" "$2"
			args+=(--token-file "$token_file")
			shift 2
			continue
			;;
		--token=*)
			write_token "$token_file" "${1#--token=}"
			args+=(--token-file "$token_file")
			;;
		*) args+=("$1") ;;
		esac
		shift
	done

	say "Running teleport-update $(redact "${args[@]}")"
	local rc=0
	TELEPORT_INSTALL_METHOD_NODE_SCRIPT=true "$updater" "${args[@]}" || rc=$?
	rm -f -- "$token_file"
	if ((rc == 126)); then
		die "could not execute $updater (exit 126); if $base_dir is mounted noexec, re-run with TMPDIR set to a directory that allows execution and that only root can write to: owned by root and writable by no one else, like every directory above it."
	fi
	if ((rc != 0)); then
		die "teleport-update install failed (exit $rc); see its message above. Re-run this script once the cause is fixed."
	fi
	say "Done: teleport-update is installed and keeps the Teleport agent up to date."
}

main "$@"
