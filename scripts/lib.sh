# Shared by scripts/serve and scripts/test: a virtualenv in .venv with the project installed.
# Sourced, not run. Every step is idempotent, so re-running a script redoes only what is missing.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# The first interpreter on PATH that is Python 3.11 or newer.
pick_python() {
    local candidate
    for candidate in "${PYTHON:-}" python3.11 python3.12 python3.13 python3; do
        [ -n "$candidate" ] || continue
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            command -v "$candidate"
            return 0
        fi
    done
    die "Python 3.11 or newer is needed (set PYTHON=/path/to/python3.11)"
}

venv_ok() {
    [ -x "$VENV/bin/python" ] &&
        "$VENV/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null &&
        "$VENV/bin/python" -m pip --version >/dev/null 2>&1
}

ensure_venv() {
    venv_ok && return 0
    local python
    python="$(pick_python)"
    say "creating $VENV with $python"
    rm -rf "$VENV"
    if ! "$python" -m venv "$VENV" >/dev/null 2>&1; then
        # Debian's python3 without the python3-venv package has no ensurepip: make the venv
        # bare and let the system's pip (22.3 or newer knows --python) put pip into it.
        rm -rf "$VENV"
        "$python" -m venv --without-pip "$VENV" ||
            die "cannot create a virtualenv (on Debian: apt-get install python3-venv)"
        "$python" -m pip --python "$VENV/bin/python" install --quiet pip ||
            die "cannot put pip into $VENV (on Debian: apt-get install python3-venv)"
    fi
    venv_ok || die "the virtualenv at $VENV does not work"
}

# pip install -e "$ROOT$1" (e.g. "" or "[test]"), skipped when the same pyproject.toml was
# already installed with the same extras and the console script is there.
ensure_installed() {
    local extras="$1" stamp digest
    stamp="$VENV/.voicebridge-installed${extras:+-${extras//[^a-z]/}}"
    digest="$( (cat "$ROOT/pyproject.toml"; echo "$extras") | sha256sum | cut -d' ' -f1)"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$digest" ] && [ -x "$VENV/bin/voicebridge" ]; then
        return 0
    fi
    say "installing voicebridge$extras into $VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$ROOT$extras"
    echo "$digest" >"$stamp"
}

# Install the Debian packages of scripts/apt-packages.txt that `$1` (serve or test) needs and
# that are missing (with sudo unless root). Nothing to do on a system without dpkg.
ensure_apt_packages() {
    local job="$1" list="$ROOT/scripts/apt-packages.txt" missing=() pkg jobs sudo=()
    command -v dpkg-query >/dev/null 2>&1 || {
        say "no dpkg here: skipping $list"
        return 0
    }
    while read -r pkg jobs; do
        pkg="${pkg%%#*}"
        [ -n "$pkg" ] || continue
        case " $jobs " in *" $job "*) ;; *) continue ;; esac
        if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
            missing+=("$pkg")
        fi
    done <"$list"
    [ "${#missing[@]}" -eq 0 ] && return 0
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    say "installing Debian packages: ${missing[*]}"
    "${sudo[@]}" apt-get update -q
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends "${missing[@]}"
    # Debian's kamailio package starts its own service on 5060, the bridge's SIP port; the
    # bridge runs Kamailio itself (serve --nodes N), so the one just installed is switched off.
    case " ${missing[*]} " in
    *" kamailio "*)
        if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
            say "disabling the kamailio service Debian started: voicebridge runs its own"
            "${sudo[@]}" systemctl disable --now kamailio.service || true
        fi
        ;;
    esac
}
