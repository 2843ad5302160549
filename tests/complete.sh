#!/bin/bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# What bash completion offers for command lines, as bash-completion would
# run it: tests/complete.sh COMPLETION_FILE 'LINE' ... prints one line per
# LINE, the candidates sorted and separated by spaces. A LINE ending in a
# space completes a new word.
# shellcheck disable=SC1091
. /usr/share/bash-completion/bash_completion || exit 1
# shellcheck disable=SC1090
. "$1" || exit 1
shift
for line in "$@"; do
	read -ra COMP_WORDS <<<"$line"
	[[ $line == *" " ]] && COMP_WORDS+=("")
	COMP_LINE=$line
	COMP_POINT=${#line}
	COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
	COMPREPLY=()
	_sockmig "${COMP_WORDS[0]}" "${COMP_WORDS[COMP_CWORD]}" \
		"${COMP_WORDS[COMP_CWORD - 1]}" 2>/dev/null
	printf '%s\n' "${COMPREPLY[@]}" | sort -u | tr '\n' ' ' | sed 's/ $//'
	echo
done
