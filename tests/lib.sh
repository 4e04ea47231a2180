# tests/lib.sh - shell helpers shared by tests/run, stress/run, stress/bench
# and tsan/run.  Source it; it defines functions only.
#
#   ensure_packages PKG...   install missing Debian packages (root: apt-get
#                            install -y; otherwise print the command, exit 1)
#   meson_setup DIR ARGS...  configure DIR, or reconfigure it if it exists
#   run CMD...               print the command, then run it
#   run_step NAME FUNC       run FUNC, time it, record PASS/FAIL (continues)
#   summary                  print the recorded steps and why each failed one
#                            failed; exit 1 if any failed
#   fail MSG                 print MSG and return 1 (fails the current step)

ensure_packages() {
	local missing=() pkg
	for pkg in "$@"; do
		if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
			missing+=("$pkg")
		fi
	done
	[ "${#missing[@]}" -eq 0 ] && return 0
	if [ "$(id -u)" -eq 0 ]; then
		echo "+ apt-get install -y ${missing[*]}"
		if ! DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"; then
			echo "+ apt-get update (install failed; refreshing the package lists once)"
			apt-get update
			DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
		fi
	else
		echo "missing packages: ${missing[*]}" >&2
		echo "install them with:  sudo apt-get install -y ${missing[*]}" >&2
		exit 1
	fi
}

run() {
	echo "+ $*"
	"$@"
}

meson_setup() {
	local dir=$1
	shift
	if [ -f "$dir/build.ninja" ]; then
		run meson setup --reconfigure "$dir" "$@"
	else
		run meson setup "$dir" "$@"
	fi
}

fail() {
	echo "FAIL: $*" >&2
	return 1
}

_steps=()
_step_logs=()
run_step() {
	local name=$1 func=$2 start rc log
	start=$(date +%s)
	echo
	echo "=== $name ==="
	# A copy of the step's output, so that summary can repeat why a step
	# failed at the end, where a truncated CI log still shows it.
	log=$(mktemp "${TMPDIR:-/tmp}/step.XXXXXX")
	set +e
	(set -e; "$func") 2>&1 | tee "$log"
	rc=${PIPESTATUS[0]}
	set -e
	local secs=$(($(date +%s) - start))
	if [ "$rc" -eq 0 ]; then
		_steps+=("PASS  $name  (${secs}s)")
		rm -f "$log"
	else
		_steps+=("FAIL  $name  (${secs}s, exit $rc)")
		_step_logs+=("$name"$'\t'"$log")
	fi
	echo "=== $name: $([ "$rc" -eq 0 ] && echo PASS || echo FAIL) in ${secs}s ==="
}

# The lines of a failed step's log that say why: failed tests, assertion
# and sanitizer reports, seeds to reproduce, compiler errors.
_why_failed() {
	grep -a -E '(^| )(FAIL|TIMEOUT|ERROR)( |:|$)|FAIL:|reproduce with|WARNING: ThreadSanitizer|ERROR: AddressSanitizer|runtime error:|LeakSanitizer|SUMMARY:|error:|Assertion|Killed|dumped core|SIG[A-Z]+' "$1" |
		grep -a -v -E '^(PASS|\+ )' | tail -n 40
}

summary() {
	local s failed=0
	echo
	echo "=== summary ==="
	for s in "${_steps[@]}"; do
		echo "$s"
		case "$s" in FAIL*) failed=1 ;; esac
	done
	if [ "$failed" -ne 0 ]; then
		local entry
		for entry in "${_step_logs[@]}"; do
			echo "--- why \"${entry%%$'\t'*}\" failed (from its log) ---"
			_why_failed "${entry#*$'\t'}" || echo "(no failure line found; see the step's output above)"
		done
		echo "RESULT: FAIL"
		return 1
	fi
	echo "RESULT: PASS"
}
