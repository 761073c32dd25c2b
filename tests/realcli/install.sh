#!/usr/bin/env bash
# Install the pinned real agent CLIs (package-lock.json) into tests/realcli/node_modules
# and expose them as tests/realcli/bin/{claude,codex,gemini,opencode,ccusage}.
#
# Idempotent: npm is skipped when node_modules was installed from the current lock
# (stamp = sha256 of package-lock.json) and every executable is present.
#
# Notes (see FINDINGS.md):
#  * .npmrc sets ignore-scripts=true: npm 11 does not run dependency install scripts
#    without approval anyway, so the claude/opencode JS wrappers are never linked.
#    We point bin/ straight at the native binaries instead.
#  * The registry reachable here does not serve every platform package that
#    opencode-ai / ccusage list as optionalDependencies (e.g. opencode-darwin-arm64@1.18.33
#    is a 404). `npm ci` then refuses the lock ("Missing: … from lock file"), so we
#    fall back to `npm install --no-save`, which still installs exactly the locked
#    versions/integrities and never rewrites package-lock.json.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE"
NM="$HERE/node_modules"
BIN="$HERE/bin"
STAMP="$NM/.realcli-lock.sha256"

die() { echo "realcli/install.sh: ERROR: $*" >&2; exit 1; }

command -v node >/dev/null || die "node not found on PATH (need node >= 20)"
command -v npm >/dev/null || die "npm not found on PATH"
[ -f package-lock.json ] || die "package-lock.json missing in $HERE"

# name -> path of the real executable (relative to $HERE)
declare -A TARGET=(
  [claude]="node_modules/@anthropic-ai/claude-code-linux-x64/claude"
  [codex]="node_modules/@openai/codex/bin/codex.js"
  [gemini]="node_modules/@google/gemini-cli/bundle/gemini.js"
  [opencode]="node_modules/opencode-linux-x64/bin/opencode"
  [ccusage]="node_modules/@ccusage/ccusage-linux-x64/bin/ccusage"
)
# opencode ships a "baseline" (no AVX2) build too
if ! grep -qw avx2 /proc/cpuinfo 2>/dev/null; then
  TARGET[opencode]="node_modules/opencode-linux-x64-baseline/bin/opencode"
fi
TOOLS=(claude codex gemini opencode ccusage)

lock_sum="$(sha256sum package-lock.json | cut -d' ' -f1)"
need_install=0
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$lock_sum" ]; then
  need_install=1
fi
for t in "${TOOLS[@]}"; do
  [ -e "${TARGET[$t]}" ] || need_install=1
done

if [ "$need_install" = 1 ]; then
  echo "realcli: installing npm packages from package-lock.json (large: ~1.3 GB) ..." >&2
  start=$(date +%s)
  log="$(mktemp)"
  if ! npm ci --no-audit --no-fund >"$log" 2>&1; then
    if grep -q "are in sync" "$log"; then
      echo "realcli: npm ci refused the lock (platform optional deps missing on this registry); using npm install --no-save" >&2
      if ! npm install --no-save --no-audit --no-fund >"$log" 2>&1; then
        tail -30 "$log" >&2; rm -f "$log"
        die "npm install failed (see output above)"
      fi
    else
      tail -30 "$log" >&2; rm -f "$log"
      die "npm ci failed (see output above)"
    fi
  fi
  rm -f "$log"
  for t in "${TOOLS[@]}"; do
    [ -e "${TARGET[$t]}" ] || die "after install, $t executable is missing: ${TARGET[$t]}"
  done
  echo "$lock_sum" >"$STAMP"
  echo "realcli: npm install took $(( $(date +%s) - start ))s, node_modules is $(du -sh "$NM" | cut -f1)" >&2
fi

mkdir -p "$BIN"
for t in "${TOOLS[@]}"; do
  tgt="$HERE/${TARGET[$t]}"
  chmod +x "$tgt" || die "cannot chmod +x $tgt"
  ln -sfn "$tgt" "$BIN/$t"
done

fail=0
for t in "${TOOLS[@]}"; do
  # HOME is isolated so version probes never touch the user's config
  tmp_home="$(mktemp -d)"
  if v="$(HOME="$tmp_home" XDG_CONFIG_HOME="$tmp_home/.config" XDG_DATA_HOME="$tmp_home/.local/share" \
          XDG_CACHE_HOME="$tmp_home/.cache" XDG_STATE_HOME="$tmp_home/.local/state" \
          CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 DISABLE_AUTOUPDATER=1 OPENCODE_DISABLE_AUTOUPDATE=1 \
          timeout 60 "$BIN/$t" --version </dev/null 2>&1 | tail -n 1)"; then
    printf '%-9s %s\n' "$t" "$v"
  else
    printf '%-9s FAILED: %s\n' "$t" "$v"; fail=1
  fi
  rm -rf "$tmp_home"
done
[ "$fail" = 0 ] || die "some tool failed to report its version"
