#!/bin/sh
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Runs the chosen case sets of the kernel matrix from the top of the tree,
# in a guest booted by scripts/kernels (or on the host), and prints one
# machine-readable line per set:
#   SMK set=NAME rc=RC secs=S passed=P failed=F skipped=K info=WORD
# after one line per skipped case with its reason:
#   SMK-SKIP set=NAME CASE: REASON
# Usage: tests/kernel-guest.sh SET...   (probe demo matrix legacy runhold
# shim integration enc; case:FILTER runs those cases verbosely, sh:FILE runs a
# script of yours from the host's file system). The output of a set that fails is printed before
# its line; a set never runs longer than SMK_SET_TIMEOUT seconds.
set -u
out=.output
limit=${SMK_SET_TIMEOUT:-1800}
case_limit=${SMK_CASE_TIMEOUT:-300}
log=$(mktemp)

now() { cut -d' ' -f1 /proc/uptime | cut -d. -f1; }

# NAME COMMAND...: run, count, print the SMK line.
run_set() {
	name=$1
	shift
	t0=$(now)
	timeout -k 10 "$limit" "$@" >"$log" 2>&1
	rc=$?
	secs=$(($(now) - t0))
	sum=$(grep '^Summary:' "$log" | tail -n 1)
	p=$(echo "$sum" | sed -n 's/.* \([0-9]*\) passed.*/\1/p')
	f=$(echo "$sum" | sed -n 's/.* \([0-9]*\) failed.*/\1/p')
	k=$(echo "$sum" | sed -n 's/.* \([0-9]*\) skipped.*/\1/p')
	info=-
	if [ "$name" = probe ]; then
		info=$(sed -n 's/^mode  *\([a-z-]*\).*/\1/p' "$log")
		[ -n "$info" ] || info=none
	fi
	if [ "$rc" != 0 ] || [ "${f:-0}" != 0 ] || [ -n "${SMK_VERBOSE:-}" ] || [ "$name" = probe ]; then
		sed "s|^|[$name] |" "$log"
	fi
	# every skip with its reason (the runner prints the reason first,
	# indented unless the set runs verbosely)
	awk -v set="$name" '/^ *SKIP: / { why = substr($0, index($0, "SKIP: ") + 6) }
		/^skip / { print "SMK-SKIP set=" set " " $2 ": " why; why = "" }' "$log"
	echo "SMK set=$name rc=$rc secs=$secs passed=${p:--} failed=${f:--} skipped=${k:--} info=$info"
}

echo "SMK kernel=$(uname -r)"
for set in "$@"; do
	case $set in
	probe) run_set probe timeout 120 "$out/sockmig" probe ;;
	demo) run_set demo "$out/sockmig" demo ;;
	matrix) run_set matrix "$out/test_sockmig" -t "$case_limit" matrix_ ;;
	legacy) run_set legacy "$out/test_sockmig" -t "$case_limit" legacy_v ;;
	runhold) run_set runhold "$out/test_sockmig" -t "$case_limit" run_ hold_ ;;
	shim) run_set shim "$out/test_sockmig" -t "$case_limit" preload_ ;;
	integration) run_set integration "$out/test_sockmig" -t "$case_limit" integration_ ;;
	# encrypted QUIC CIDs: the AES program through this kernel's verifier,
	# or (before 5.11) its refusal
	enc) run_set enc "$out/test_sockmig" -t "$case_limit" udp_quic_enc cost_quic_lb_enc ;;
	# UDP groups with capabilities, not root; and before 5.11 the
	# RLIMIT_MEMLOCK that BPF memory is charged to, named; hold and attach
	# of a server of their own uid, under the kernel's Yama (Ubuntu's
	# ptrace_scope 1: CAP_SYS_PTRACE too, and attach says so without it)
	caps) run_set caps "$out/test_sockmig" -t "$case_limit" caps_udp caps_memlock caps_attach caps_hold ;;
	# UDP groups of an older layout upgraded, their flows kept across the
	# flip (batched copies from 5.6, key by key before)
	udp) run_set udp "$out/test_sockmig" -t "$case_limit" udp_upgrade ;;
	case:*) SMK_VERBOSE=1 run_set "$set" "$out/test_sockmig" -v -t "$case_limit" "${set#case:}" ;;
	sh:*) SMK_VERBOSE=1 run_set "$set" sh "${set#sh:}" ;;
	*) echo "SMK set=$set rc=2 secs=0 passed=- failed=- skipped=- info=unknown-set" ;;
	esac
done
rm -f "$log"
echo "SMK done"
